"""Login credentials: what `gatehouse login` leaves on a developer's machine.

A login credential (``ghr_<id>_<random>``) is long-lived and never sent on a
Messages API request: `gatehouse key-helper` trades it at ``POST /auth/token``
for a short-lived access token (identity/tokens.py).  Only
``HMAC-SHA256(secret, credential)`` is stored, in the ``credentials`` table.

Every change to credentials (and to users, groups and memberships, which the
SCIM code makes) bumps the ``identity`` revision and is announced on the Redis
channel ``gatehouse:identity``, so every gateway reloads its revocation
snapshot within a second (at once with Redis).
"""

from __future__ import annotations

import logging
import re
import secrets
import string
import time
from dataclasses import dataclass

import sqlalchemy as sa

from gatehouse.errors import InvalidRequest
from gatehouse.identity.keys import digest
from gatehouse.store import channels
from gatehouse.store.db import Database
from gatehouse.store.schema import IDENTITY_REVISION, credentials, revisions

log = logging.getLogger("gatehouse.identity")

CREDENTIAL_PREFIX = "ghr_"
IDENTITY_CHANNEL = "gatehouse:identity"
"""Redis channel on which identity changes are announced (the payload says what changed)."""

_ID_ALPHABET = string.ascii_lowercase + string.digits
_BODY_ALPHABET = string.ascii_letters + string.digits
_SHAPE = re.compile(r"^ghr_([a-z0-9]{12})_[A-Za-z0-9]{40}$")


@dataclass(frozen=True, slots=True)
class Credential:
    """A stored login credential (never its secret)."""

    id: str
    email: str
    client: str
    created_at: float
    last_used_at: float | None = None
    expires_at: float | None = None
    revoked_at: float | None = None

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def normalize_email(email: str) -> str:
    """Emails are compared case-insensitively everywhere identity is decided."""
    return email.strip().lower()


def credential_id(plaintext: str) -> str | None:
    """The id inside a well-formed ``ghr_`` credential, else ``None`` (safe to log)."""
    match = _SHAPE.match(plaintext)
    return match.group(1) if match else None


async def issue_credential(
    db: Database,
    email: str,
    client: str,
    secret: bytes,
    *,
    expires_in: float | None = None,
    now: float | None = None,
) -> tuple[str, str]:
    """Mint and store a login credential for ``email``; returns ``(id, plaintext)``.

    ``client`` says what asked for it (for example ``gatehouse-cli on host``); the
    plaintext is returned once and never stored.
    """
    email = normalize_email(email)
    if "@" not in email:
        raise InvalidRequest(f"{email!r} is not an email address; credentials belong to a human")
    now = time.time() if now is None else now
    cred_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
    body = "".join(secrets.choice(_BODY_ALPHABET) for _ in range(40))
    plaintext = f"{CREDENTIAL_PREFIX}{cred_id}_{body}"
    row = {
        "id": cred_id,
        "digest": digest(secret, plaintext),
        "email": email,
        "client": client[:500],
        "created_at": now,
        "last_used_at": None,
        "expires_at": None if expires_in is None else now + expires_in,
        "revoked_at": None,
    }
    await db.execute(credentials.insert().values(row), "store the login credential", conflict=True)
    await bump_identity_revision(db)
    return cred_id, plaintext


async def find_credential(db: Database, plaintext: str, secret: bytes) -> Credential | None:
    """The stored credential ``plaintext`` names (revoked ones included), else ``None``."""
    cred_id = credential_id(plaintext)
    if cred_id is None:
        return None
    query = sa.select(credentials).where(
        credentials.c.digest == digest(secret, plaintext), credentials.c.id == cred_id
    )
    rows = await db.fetch_all(query, "look up the login credential")
    return _credential(rows[0]) if rows else None


async def get_credential(db: Database, cred_id: str) -> Credential | None:
    rows = await db.fetch_all(
        sa.select(credentials).where(credentials.c.id == cred_id), "read the login credential"
    )
    return _credential(rows[0]) if rows else None


async def list_credentials(db: Database, email: str | None = None) -> list[Credential]:
    """Credentials, oldest first; only ``email``'s when given."""
    query = sa.select(credentials).order_by(credentials.c.created_at, credentials.c.id)
    if email is not None:
        query = query.where(credentials.c.email == normalize_email(email))
    return [_credential(row) for row in await db.fetch_all(query, "list login credentials")]


async def touch_credential(db: Database, cred_id: str, now: float | None = None) -> None:
    """Record that a credential was used (no revision bump: nothing to reload)."""
    stamp = time.time() if now is None else now
    await db.execute(
        credentials.update().where(credentials.c.id == cred_id).values(last_used_at=stamp),
        "record the credential's use",
    )


async def revoke_credential(db: Database, cred_id: str, *, now: float | None = None) -> bool:
    """Revoke one credential; ``False`` if it is unknown or already revoked."""
    stamp = time.time() if now is None else now
    query = (
        credentials.update()
        .where(credentials.c.id == cred_id, credentials.c.revoked_at.is_(None))
        .values(revoked_at=stamp)
    )
    if await db.execute(query, "revoke the login credential") != 1:
        return False
    await bump_identity_revision(db)
    return True


async def revoke_all_for(db: Database, email: str, *, now: float | None = None) -> int:
    """Revoke every live credential of ``email``; returns how many were revoked."""
    stamp = time.time() if now is None else now
    query = (
        credentials.update()
        .where(credentials.c.email == normalize_email(email), credentials.c.revoked_at.is_(None))
        .values(revoked_at=stamp)
    )
    count = await db.execute(query, "revoke the login credentials")
    if count:
        await bump_identity_revision(db)
    return count


async def bump_identity_revision(db: Database) -> None:
    """Tell every gateway's poll that users, groups or credentials changed."""
    await db.execute(
        revisions.update()
        .where(revisions.c.name == IDENTITY_REVISION)
        .values(value=revisions.c.value + 1),
        "bump the identity revision",
    )


async def identity_revision(db: Database) -> int:
    """A number that changes whenever users, groups or credentials change."""
    rows = await db.fetch_all(
        sa.select(revisions.c.value).where(revisions.c.name == IDENTITY_REVISION),
        "read the identity revision",
    )
    return int(rows[0]["value"]) if rows else 0


async def announce_identity_change(redis_url: str, what: str) -> None:
    """Tell running gateways that identity changed (best effort: they also poll).

    ``what`` is informational (``credential:<id>``, ``user:<email>``); receivers
    reload everything either way.
    """
    await channels.announce(redis_url, IDENTITY_CHANNEL, what, "identity")


def _credential(row: sa.RowMapping) -> Credential:
    return Credential(
        id=row["id"],
        email=row["email"],
        client=row["client"],
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
    )
