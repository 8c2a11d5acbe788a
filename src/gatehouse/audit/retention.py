"""How long transcripts are kept, what legal holds keep longer, and the sweep.

Retention is per chain (a session, or a developer's session-less requests):
a chain goes once its *last* record is older than its retention — the
repository's override if there is one, else the team's, else the global
``audit_retention_days`` (a chain over several repositories keeps the longest
of theirs).  0 days, as the default or as an override, keeps forever: a team
or repository set to 0 is never swept even when the default is finite, and
with a 0 default only chains whose team or repository has a finite override
go.  A chain touched by an active hold on its developer, session or
repository is kept whatever its age.  The administrative chain is never swept.

`gc` deletes whole expired chains (records and their block links), then
sweeps the blocks no remaining chain refers to — mark and sweep, limited to
the deleted chains' blocks — with their search text.  Each deleted chain
leaves an ``audit_deletions`` row (``verify`` accepts the chain's end and a
continuation from it), and each run an admin record.  Every policy change
here is itself an admin record.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gatehouse.audit import append
from gatehouse.audit.records import ADMIN_CHAIN, admin_row
from gatehouse.store.db import Database
from gatehouse.store.schema import (
    audit_block_sessions,
    audit_deletions,
    audit_holds,
    audit_records,
    audit_retention,
)

DAY = 86_400.0
HOLD_SCOPES = ("developer", "session", "repository")
RETENTION_SCOPES = ("team", "repository")
GC_ACTOR = "gatehouse-retention"
_BATCH = 50


@dataclass(frozen=True, slots=True)
class Hold:
    id: str
    scope: str
    value: str
    reason: str
    created_by: str
    created_ts: float


@dataclass(slots=True)
class GcReport:
    """What one `gc` run did."""

    chains: int = 0
    records: int = 0
    blocks: int = 0
    held: int = 0
    deleted_chains: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Chain:
    last_ts: float = 0.0
    developers: set[str] = field(default_factory=set)
    teams: set[str] = field(default_factory=set)
    repositories: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)


async def _admin(
    conn: AsyncConnection, action: str, actor: str, reason: str, **detail: Any
) -> None:
    await append.write_admin_rows(
        conn, [admin_row(action, actor=actor, reason=reason, detail=detail, ts=time.time())]
    )


async def set_retention(
    db: Database, scope: str, value: str, days: int | None, *, actor: str, reason: str = ""
) -> None:
    """Override the retention of a team or repository; ``days=None`` removes the override.

    ``days=0`` keeps that team's or repository's chains forever.
    """
    if scope not in RETENTION_SCOPES:
        raise ValueError(f"retention scope must be one of {RETENTION_SCOPES}, not {scope!r}")
    if days is not None and days < 0:
        raise ValueError("retention must be 0 (keep forever) or a number of days")
    key = sa.and_(audit_retention.c.scope == scope, audit_retention.c.value == value)
    async with db.transaction("set the audit retention") as conn:
        await conn.execute(audit_retention.delete().where(key))
        if days is not None:
            await conn.execute(
                audit_retention.insert().values(
                    scope=scope, value=value, days=days, set_by=actor, set_ts=time.time()
                )
            )
        await _admin(
            conn, "audit_retention_set", actor, reason, scope=scope, value=value, days=days
        )


async def retention_overrides(db: Database) -> dict[tuple[str, str], int]:
    rows = await db.fetch_all(sa.select(audit_retention), "read audit retention")
    return {(r["scope"], r["value"]): int(r["days"]) for r in rows}


async def place_hold(db: Database, scope: str, value: str, *, reason: str, actor: str) -> Hold:
    """Keep everything of a developer, session or repository until released."""
    if scope not in HOLD_SCOPES:
        raise ValueError(f"hold scope must be one of {HOLD_SCOPES}, not {scope!r}")
    hold = Hold(uuid.uuid4().hex, scope, value, reason, actor, time.time())
    async with db.transaction("place a legal hold") as conn:
        await conn.execute(
            audit_holds.insert().values(
                id=hold.id,
                scope=scope,
                value=value,
                reason=reason,
                created_by=actor,
                created_ts=hold.created_ts,
            )
        )
        await _admin(
            conn, "audit_hold_placed", actor, reason, hold=hold.id, scope=scope, value=value
        )
    return hold


async def release_hold(db: Database, hold_id: str, *, actor: str, reason: str = "") -> bool:
    """Release an active hold; ``False`` if there is no such active hold."""
    async with db.transaction("release a legal hold") as conn:
        result = await conn.execute(
            audit_holds.update()
            .where(audit_holds.c.id == hold_id, audit_holds.c.released_ts.is_(None))
            .values(released_by=actor, released_ts=time.time())
        )
        if result.rowcount != 1:
            return False
        await _admin(conn, "audit_hold_released", actor, reason, hold=hold_id)
    return True


async def active_holds(db: Database) -> list[Hold]:
    rows = await db.fetch_all(
        sa.select(audit_holds)
        .where(audit_holds.c.released_ts.is_(None))
        .order_by(audit_holds.c.created_ts),
        "read legal holds",
    )
    return [
        Hold(r["id"], r["scope"], r["value"], r["reason"], r["created_by"], r["created_ts"])
        for r in rows
    ]


def retention_days(
    chain: _Chain, overrides: dict[tuple[str, str], int], default: int
) -> int | None:
    """The repository's override, else the team's, else the default; the longest if
    several.  ``None``: kept forever (0 days, wherever it is set, keeps forever)."""
    by_repo = [
        overrides[("repository", r)] for r in chain.repositories if ("repository", r) in overrides
    ]
    by_team = [overrides[("team", t)] for t in chain.teams if ("team", t) in overrides]
    days = by_repo or by_team or [default]
    return None if 0 in days else max(days)


def is_held(chain: _Chain, holds: list[Hold]) -> bool:
    scoped = {
        "developer": chain.developers,
        "session": chain.sessions,
        "repository": chain.repositories,
    }
    return any(h.value in scoped[h.scope] for h in holds)


async def _chains(db: Database) -> dict[str, _Chain]:
    rows = await db.fetch_all(
        sa.select(
            audit_records.c.chain,
            audit_records.c.developer,
            audit_records.c.team,
            audit_records.c.repository,
            audit_records.c.session_id,
            sa.func.max(audit_records.c.ts).label("last_ts"),
        )
        .where(audit_records.c.chain != ADMIN_CHAIN)
        .group_by(
            audit_records.c.chain,
            audit_records.c.developer,
            audit_records.c.team,
            audit_records.c.repository,
            audit_records.c.session_id,
        ),
        "read audit chains",
    )
    chains: dict[str, _Chain] = defaultdict(_Chain)
    for r in rows:
        c = chains[r["chain"]]
        c.last_ts = max(c.last_ts, float(r["last_ts"]))
        c.developers.add(r["developer"])
        c.teams.add(r["team"])
        c.repositories.add(r["repository"])
        c.sessions.add(r["session_id"])
    return chains


async def gc(db: Database, now: float, *, default_days: int, reason: str = "retention") -> GcReport:
    """Delete expired, unheld chains and the blocks only they referred to.

    ``default_days`` is ``audit_retention_days``: 0 keeps forever (see the module).
    """
    overrides = await retention_overrides(db)
    holds = await active_holds(db)
    report = GcReport()
    expired = []
    for name, chain in sorted((await _chains(db)).items()):
        days = retention_days(chain, overrides, default_days)
        if days is None or chain.last_ts + days * DAY > now:
            continue
        if is_held(chain, holds):
            report.held += 1
            continue
        expired.append(name)
    for i in range(0, len(expired), _BATCH):
        batch = expired[i : i + _BATCH]
        async with db.transaction("delete expired audit records") as conn:
            await append.take_write_lock(conn)
            records = blocks = 0
            for name in batch:
                counted = await _delete_chain(conn, name, now, reason)
                records, blocks = records + counted[0], blocks + counted[1]
            await _admin(
                conn,
                "audit_deleted",
                GC_ACTOR,
                reason,
                chains=batch,
                records=records,
                blocks=blocks,
            )
        report.chains += len(batch)
        report.records += records
        report.blocks += blocks
        report.deleted_chains.extend(batch)
    return report


async def _delete_chain(
    conn: AsyncConnection, chain: str, now: float, reason: str
) -> tuple[int, int]:
    await append.lock_chain(conn, chain)
    seq, last_hash = await append.chain_head(conn, chain)
    candidates = list(
        (
            await conn.execute(
                sa.select(audit_block_sessions.c.digest).where(
                    audit_block_sessions.c.chain == chain
                )
            )
        ).scalars()
    )
    await conn.execute(audit_block_sessions.delete().where(audit_block_sessions.c.chain == chain))
    records = (
        await conn.execute(audit_records.delete().where(audit_records.c.chain == chain))
    ).rowcount
    still = await append.existing(conn, audit_block_sessions.c.digest, candidates)
    blocks = await append.delete_blocks(conn, [d for d in candidates if d not in still])
    await conn.execute(
        audit_deletions.insert().values(
            id=uuid.uuid4().hex,
            chain=chain,
            through_seq=seq,
            last_hash=last_hash,
            records=int(records),
            blocks=blocks,
            reason=reason,
            ts=now,
        )
    )
    return int(records), blocks
