"""Tamper evidence: each chain's hash links, daily roots over all chains, and `verify`.

Every record carries ``prev_hash`` (its predecessor's ``hash``) and ``hash``
(see `gatehouse.audit.records`).  `seal_days` writes, for every finished UTC
day, the head — ``[seq, hash]`` of the last record that day — of every chain
with a record that day, and a root hash over them and the previous day's root.
Publishing the roots elsewhere (a ticket, a WORM bucket) pins the past.

`verify` walks the chains and the roots and names what does not add up:

``altered``    a record whose fields no longer match its hash, or whose hash changed
``inserted``   a record its successor skips over, or one added to a sealed day
``deleted``    a gap in a chain, a missing predecessor, a sealed head that is gone
``block``      a block whose content no longer matches its digest (or is missing)
``root``       a daily root that no longer matches its heads, or a missing day

A chain ended by retention (``audit_deletions``) is not a deletion.
"""

from __future__ import annotations

import calendar
import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from gatehouse.audit.crypto import AuditKeyError, Keyring, plaintext
from gatehouse.audit.records import record_hash
from gatehouse.store.db import Database
from gatehouse.store.schema import (
    audit_block_sessions,
    audit_blocks,
    audit_deletions,
    audit_records,
    audit_roots,
)

DAY = 86_400
SEAL_GRACE = 6 * 3600.0
"""A day is sealed this long after it ends, so records still in a spool reach it first."""
_PAGE = 2000


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing `verify` found wrong, named so an investigator can look at it."""

    kind: str  # altered | inserted | deleted | block | root
    detail: str
    chain: str = ""
    seq: int | None = None
    record_id: str = ""
    digest: str = ""


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def day_start(day: str) -> float:
    return float(calendar.timegm(time.strptime(day, "%Y-%m-%d")))


def root_hash(prev_root: str, day: str, heads: Mapping[str, list[Any]]) -> str:
    body = orjson.dumps({"day": day, "heads": heads}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_root.encode() + b"\n" + body).hexdigest()


async def day_heads(db: Database, day: str) -> tuple[dict[str, list[Any]], int]:
    """``{chain: [seq, hash]}`` of the last record of each chain that ``day``, and the count."""
    start = day_start(day)
    in_day = sa.and_(audit_records.c.ts >= start, audit_records.c.ts < start + DAY)
    last = (
        sa.select(audit_records.c.chain, sa.func.max(audit_records.c.seq).label("seq"))
        .where(in_day)
        .group_by(audit_records.c.chain)
        .subquery()
    )
    query = sa.select(audit_records.c.chain, audit_records.c.seq, audit_records.c.hash).join(
        last, sa.and_(audit_records.c.chain == last.c.chain, audit_records.c.seq == last.c.seq)
    )
    rows = await db.fetch_all(query, "read the audit chain heads")
    count = await db.fetch_all(
        sa.select(sa.func.count().label("n")).select_from(audit_records).where(in_day),
        "count audit records",
    )
    heads = {r["chain"]: [int(r["seq"]), r["hash"]] for r in rows}
    return heads, int(count[0]["n"])


async def seal_days(db: Database, now: float, *, grace: float = SEAL_GRACE) -> list[str]:
    """Write the root of every finished day not yet sealed; returns the days sealed."""
    last = await db.fetch_all(
        sa.select(audit_roots).order_by(audit_roots.c.day.desc()).limit(1), "read audit roots"
    )
    if last:
        prev_root, first = last[0]["root"], day_start(last[0]["day"]) + DAY
    else:
        oldest = await db.fetch_all(
            sa.select(sa.func.min(audit_records.c.ts).label("ts")), "read audit records"
        )
        if oldest[0]["ts"] is None:
            return []
        prev_root, first = "", day_start(day_of(float(oldest[0]["ts"])))
    sealed = []
    day = first
    while day + DAY + grace <= now:
        name = day_of(day)
        heads, count = await day_heads(db, name)
        if heads:
            prev_root = root_hash(prev_root, name, heads)
            await db.execute(
                audit_roots.insert().values(
                    day=name,
                    root=prev_root,
                    chains=len(heads),
                    records=count,
                    heads=orjson.dumps(heads, option=orjson.OPT_SORT_KEYS).decode(),
                    created_ts=now,
                ),
                "seal an audit day",
                conflict=True,
            )
            sealed.append(name)
        day += DAY
    return sealed


async def verify(
    db: Database, since: float | None = None, *, keyring: Keyring | None = None
) -> list[Problem]:
    """Everything that does not add up in the chains, roots and blocks (see the module doc).

    With ``since``, only chains with a record from then on, roots of days from
    then on and blocks first stored from then on are checked.
    """
    ended = await _ended(db)
    query = sa.select(audit_records.c.chain).distinct()
    if since is not None:
        query = query.where(audit_records.c.ts >= since)
    chains = [r["chain"] for r in await db.fetch_all(query, "list audit chains")]
    problems: list[Problem] = []
    for chain in sorted(chains):
        rows = await db.fetch_all(
            sa.select(audit_records)
            .where(audit_records.c.chain == chain)
            .order_by(audit_records.c.seq),
            "read an audit chain",
        )
        problems.extend(check_chain(chain, [dict(r) for r in rows], ended.get(chain)))
    problems.extend(await _check_roots(db, since, ended))
    problems.extend(await _check_blocks(db, since, keyring))
    return problems


def check_chain(
    chain: str, rows: list[dict[str, Any]], ended: tuple[int, str] | None
) -> list[Problem]:
    """The problems of one chain, its rows in ``seq`` order."""
    problems: list[Problem] = []
    seq, prev = ended if ended is not None else (0, "")
    before_prev: str | None = None
    previous: dict[str, Any] | None = None
    for row in rows:
        where = {"chain": chain, "seq": int(row["seq"]), "record_id": row["id"]}
        if record_hash(row["prev_hash"], row) != row["hash"]:
            problems.append(Problem("altered", "fields do not match the record's hash", **where))
        if row["seq"] > seq + 1:
            missing = f"{seq + 1}" if row["seq"] == seq + 2 else f"{seq + 1}..{row['seq'] - 1}"
            problems.append(Problem("deleted", f"records {missing} are missing", **where))
        elif row["prev_hash"] != prev:
            if previous is not None and row["prev_hash"] == before_prev:
                problems.append(
                    Problem(
                        "inserted",
                        f"not linked from its successor {row['id']}",
                        chain=chain,
                        seq=int(previous["seq"]),
                        record_id=previous["id"],
                    )
                )
            else:
                problems.append(
                    Problem(
                        "deleted",
                        "the record this one follows is missing or was replaced",
                        **where,
                    )
                )
        before_prev, prev, seq, previous = prev, row["hash"], int(row["seq"]), row
    return problems


async def _ended(db: Database) -> dict[str, tuple[int, str]]:
    rows = await db.fetch_all(
        sa.select(
            audit_deletions.c.chain, audit_deletions.c.through_seq, audit_deletions.c.last_hash
        ),
        "read audit deletions",
    )
    ended: dict[str, tuple[int, str]] = {}
    for r in rows:
        if r["through_seq"] >= ended.get(r["chain"], (0, ""))[0]:
            ended[r["chain"]] = (int(r["through_seq"]), r["last_hash"])
    return ended


async def _check_roots(
    db: Database, since: float | None, ended: Mapping[str, tuple[int, str]]
) -> list[Problem]:
    rows = await db.fetch_all(sa.select(audit_roots).order_by(audit_roots.c.day), "read roots")
    problems: list[Problem] = []
    prev_root = ""
    for row in rows:
        day, sealed = row["day"], orjson.loads(row["heads"])
        if root_hash(prev_root, day, sealed) != row["root"]:
            problems.append(
                Problem("root", f"the root of {day} does not match its heads or the day before")
            )
        prev_root = row["root"]
        if since is not None and day_start(day) + DAY <= since:
            continue
        heads, _count = await day_heads(db, day)
        problems.extend(_compare_heads(day, sealed, heads, ended))
    return problems


def _compare_heads(
    day: str,
    sealed: Mapping[str, list[Any]],
    heads: Mapping[str, list[Any]],
    ended: Mapping[str, tuple[int, str]],
) -> Iterable[Problem]:
    for chain, (seq, digest) in sealed.items():
        if chain in ended and ended[chain][0] >= seq:
            continue
        now = heads.get(chain)
        if now is None or now[0] < seq:
            yield Problem("deleted", f"the head sealed on {day} is gone", chain=chain, seq=seq)
        elif now[0] > seq:
            yield Problem(
                "inserted", f"records after the head sealed on {day}", chain=chain, seq=now[0]
            )
        elif now[1] != digest:
            yield Problem("altered", f"the head sealed on {day} changed", chain=chain, seq=seq)
    for chain, (seq, _digest) in heads.items():
        if chain not in sealed:
            yield Problem("inserted", f"a chain added to sealed day {day}", chain=chain, seq=seq)


async def _check_blocks(
    db: Database, since: float | None, keyring: Keyring | None
) -> list[Problem]:
    problems: list[Problem] = []
    after = ""
    while True:
        query = sa.select(audit_blocks).where(audit_blocks.c.digest > after)
        if since is not None:
            query = query.where(audit_blocks.c.first_ts >= since)
        page = await db.fetch_all(query.order_by(audit_blocks.c.digest).limit(_PAGE), "read blocks")
        for row in page:
            digest = row["digest"]
            try:
                raw = plaintext(digest, row["key_id"], row["content"], keyring)
            except AuditKeyError as exc:
                problems.append(Problem("block", str(exc), digest=digest))
                continue
            if hashlib.sha256(raw).hexdigest() != digest:
                problems.append(
                    Problem("block", "content does not match its digest", digest=digest)
                )
        if len(page) < _PAGE:
            break
        after = page[-1]["digest"]
    missing = (
        sa.select(
            audit_block_sessions.c.digest,
            audit_block_sessions.c.chain,
            audit_block_sessions.c.record_id,
        )
        .outerjoin(audit_blocks, audit_blocks.c.digest == audit_block_sessions.c.digest)
        .where(audit_blocks.c.digest.is_(None))
    )
    if since is not None:
        missing = missing.where(audit_block_sessions.c.ts >= since)
    for row in await db.fetch_all(missing, "find missing blocks"):
        problems.append(
            Problem(
                "block",
                "referenced but not stored",
                chain=row["chain"],
                record_id=row["record_id"],
                digest=row["digest"],
            )
        )
    return problems
