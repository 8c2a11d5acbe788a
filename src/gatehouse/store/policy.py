"""The versioned policy: every version of the whole document, and how it changes.

The newest row of ``policy_versions`` is the policy in force.  Every change —
from the admin API, the CLI or a policy file — is a read-modify-write of the
whole document in one transaction that first bumps the ``policy`` revision:
that update takes the row lock on PostgreSQL and the write lock on SQLite, so
concurrent changes queue and none is lost.  The same transaction stores an
event saying who changed what and why.  After the commit the change is
announced on Redis (``gatehouse:policy``) so every gateway reloads at once;
the revision poll is the safety net.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson
import sqlalchemy as sa

from gatehouse.audit.append import record_admin_events
from gatehouse.events import Event
from gatehouse.policy.document import Policy, diff
from gatehouse.store import channels
from gatehouse.store.db import Database
from gatehouse.store.errors import StoreError
from gatehouse.store.schema import POLICY_REVISION, event_to_row, events, policy_versions, revisions

POLICY_CHANNEL = "gatehouse:policy"
SOURCES = ("api", "cli", "file")


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One stored version: the document and who made it, why, from where, when."""

    version: int
    policy: Policy
    author: str
    reason: str
    source: str
    created_at: float


class _Unchanged(Exception):
    """Raised inside the transaction to roll back a change that changes nothing."""


class PolicyStore:
    """Read and change the policy; ``redis_url`` (optional) announces changes."""

    def __init__(self, db: Database, redis_url: str = "") -> None:
        self.db = db
        self.redis_url = redis_url

    async def revision(self) -> int:
        """A number that moves with every new version (what gateways poll)."""
        query = sa.select(revisions.c.value).where(revisions.c.name == POLICY_REVISION)
        rows = await self.db.fetch_all(query, "read the policy revision")
        return int(rows[0]["value"]) if rows else 0

    async def current(self) -> tuple[int, Policy]:
        """The version in force and its document."""
        query = sa.select(policy_versions).order_by(policy_versions.c.version.desc()).limit(1)
        rows = await self.db.fetch_all(query, "read the policy")
        if not rows:
            return 0, Policy()
        return int(rows[0]["version"]), _policy(rows[0])

    async def history(self, limit: int = 50) -> list[PolicyVersion]:
        """The newest ``limit`` versions, newest first."""
        query = sa.select(policy_versions).order_by(policy_versions.c.version.desc()).limit(limit)
        rows = await self.db.fetch_all(query, "read the policy history")
        return [_version(row) for row in rows]

    async def get(self, version: int) -> PolicyVersion | None:
        query = sa.select(policy_versions).where(policy_versions.c.version == version)
        rows = await self.db.fetch_all(query, "read a policy version")
        return _version(rows[0]) if rows else None

    async def change(
        self,
        mutate: Callable[[Policy], Policy],
        *,
        author: str,
        reason: str,
        source: str,
        event_kind: str = "policy_changed",
    ) -> tuple[int, Policy]:
        """Apply ``mutate`` to the policy in force and store the result as a new version.

        ``mutate`` runs inside the transaction and may raise (a `GatewayError`
        for a refused change), which changes nothing.  A result equal to the
        current document stores nothing and returns the current version.
        """
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, not {source!r}")
        result: tuple[int, Policy] | None = None
        try:
            async with self.db.transaction("change the policy") as conn:
                # The bump comes first: it serialises concurrent changes (row lock on
                # PostgreSQL, the write lock on SQLite) before the read below.
                await conn.execute(
                    revisions.update()
                    .where(revisions.c.name == POLICY_REVISION)
                    .values(value=revisions.c.value + 1)
                )
                latest = (
                    (
                        await conn.execute(
                            sa.select(policy_versions)
                            .order_by(policy_versions.c.version.desc())
                            .limit(1)
                        )
                    )
                    .mappings()
                    .first()
                )
                if latest is None:
                    raise StoreError("the policy table is empty: run the migrations")
                old_version, old = int(latest["version"]), _policy(latest)
                new = mutate(old)
                if new == old:
                    result = (old_version, old)
                    raise _Unchanged
                version, now = old_version + 1, time.time()
                await conn.execute(
                    policy_versions.insert().values(
                        version=version,
                        document=orjson.dumps(new.to_dict()).decode(),
                        author=author,
                        reason=reason,
                        source=source,
                        created_at=now,
                    )
                )
                changes = diff(old, new)
                event = Event(
                    kind=event_kind,
                    subject=f"policy v{version} by {author}: {reason or '; '.join(changes[:3])}",
                    severity="warning" if any("kill switch" in c for c in changes) else "info",
                    detail={
                        "version": version,
                        "previous": old_version,
                        "author": author,
                        "reason": reason,
                        "source": source,
                        "changes": changes,
                    },
                    ts=now,
                )
                await conn.execute(events.insert().values(event_to_row(event)))
                await record_admin_events(conn, [event])
        except _Unchanged:
            assert result is not None
            return result
        await channels.announce(self.redis_url, POLICY_CHANNEL, str(version), "policy")
        return version, new

    async def apply(
        self, policy: Policy, *, author: str, reason: str, source: str = "file"
    ) -> tuple[int, Policy]:
        """Replace the whole document (policy as code); same history as `change`."""
        return await self.change(lambda _old: policy, author=author, reason=reason, source=source)


def _policy(row: sa.RowMapping) -> Policy:
    return Policy.from_dict(orjson.loads(row["document"]))


def _version(row: sa.RowMapping) -> PolicyVersion:
    return PolicyVersion(
        version=int(row["version"]),
        policy=_policy(row),
        author=row["author"],
        reason=row["reason"],
        source=row["source"],
        created_at=float(row["created_at"]),
    )
