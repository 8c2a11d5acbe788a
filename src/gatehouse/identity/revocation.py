"""Who may no longer use a token they still hold: the in-memory revocation snapshot.

Access tokens are verified without the database (identity/tokens.py); what the
token cannot say — that its login credential was revoked, or that the IdP
deprovisioned its human since — comes from `Revocations`, a snapshot of
revoked credential ids and deprovisioned emails.  `IdentityWatcher` reloads it
when the ``identity`` revision moves (polled about once a second) and at once
when a change is announced on Redis (``gatehouse:identity``), so a revocation
reaches every replica within a second.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import sqlalchemy as sa

from gatehouse.identity.credentials import IDENTITY_CHANNEL, identity_revision
from gatehouse.store import channels
from gatehouse.store import identity as directory_store
from gatehouse.store.db import Database
from gatehouse.store.schema import credentials

log = logging.getLogger("gatehouse.identity")


@dataclass(frozen=True, slots=True)
class Revocations:
    """Revoked login credentials (id → when) and deprovisioned humans (email → when)."""

    credentials: dict[str, float] = field(default_factory=dict)
    users: dict[str, float] = field(default_factory=dict)

    def credential_revoked(self, credential_id: str) -> float | None:
        return self.credentials.get(credential_id)

    def user_deprovisioned(self, email: str) -> float | None:
        return self.users.get(email.lower())


async def load_revocations(db: Database) -> Revocations:
    """Read the snapshot: credentials revoked or expired, humans deactivated or deleted."""
    rows = await db.fetch_all(
        sa.select(credentials.c.id, credentials.c.revoked_at, credentials.c.expires_at).where(
            sa.or_(credentials.c.revoked_at.is_not(None), credentials.c.expires_at.is_not(None))
        ),
        "read revoked login credentials",
    )
    revoked: dict[str, float] = {}
    for row in rows:
        if row["revoked_at"] is not None:
            revoked[row["id"]] = float(row["revoked_at"])
        elif row["expires_at"] is not None:
            # An expired login ends its tokens too; checked against the clock below.
            revoked[row["id"]] = float(row["expires_at"])
    users = await directory_store.deprovisioned(db)
    return Revocations(credentials=revoked, users={k.lower(): v for k, v in users.items()})


class IdentityWatcher(channels.Followed):
    """Keeps `revocations` current: revision poll plus Redis announcements."""

    channel = IDENTITY_CHANNEL
    what = "identity"

    def __init__(self, db: Database, *, refresh_interval: float = 1.0) -> None:
        super().__init__(refresh_interval)
        self._db = db
        self.revocations = Revocations()

    async def revision(self) -> int:
        return await identity_revision(self._db)

    async def reload(self) -> None:
        self.revocations = await load_revocations(self._db)
