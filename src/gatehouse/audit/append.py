"""Writing audit rows inside a transaction someone else holds.

Used by the writer (`gatehouse.audit.store`) and by the store modules that
record administrative actions (`record_admin_events`), in the transaction
that makes the change, so an admin action and its audit record commit together.
Imports only the schema, never ``gatehouse.store.db``: the database calls this.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from gatehouse.audit.records import admin_row_for, record_hash
from gatehouse.content import Block, block_texts, make_block
from gatehouse.events import Event
from gatehouse.store.schema import (
    audit_block_sessions,
    audit_blocks,
    audit_deletions,
    audit_records,
)

ADMIN_BLOCK_PATH = "admin"
_CHUNK = 500

# On SQLite the FTS row's rowid derives from the digest (63 bits of it) and is the
# only link from the text to its block (the index stores no digest column): deleting
# a block's text is a rowid lookup, and it survives VACUUM.  Search maps a rowid
# back to its block through the first 15 hex digits (`rowid_prefix`).
_TEXT_INSERT = {
    False: sa.text("INSERT INTO audit_text (rowid, body) VALUES (:r, :b)"),
    True: sa.text(
        "INSERT INTO audit_text (digest, body) VALUES (:d, :b) ON CONFLICT (digest) DO NOTHING"
    ),
}
_TEXT_DELETE = {
    False: "DELETE FROM audit_text WHERE rowid IN :ds",
    True: "DELETE FROM audit_text WHERE digest IN :ds",
}


def text_rowid(digest: str) -> int:
    """The SQLite FTS rowid of a block's text."""
    return int(digest[:16], 16) >> 1


def rowid_prefix(rowid: str) -> str:
    """SQL (SQLite) for the first 15 hex digits of the digest behind FTS rowid ``rowid``."""
    return f"printf('%015x', {rowid} >> 3)"


@dataclass(frozen=True, slots=True)
class StoredBlock:
    """A block as it goes into ``audit_blocks`` (content possibly encrypted)."""

    digest: str
    kind: str
    size: int
    content: bytes
    key_id: str
    text: str
    ts: float


def block_text(block: Block) -> str:
    """What search reads of a block: its text pieces, one per line."""
    return "\n".join(text for _, text in block_texts(block))


def admin_block(row: Mapping[str, Any]) -> Block:
    """The one block of an admin record: what was done, by whom, why, with the detail."""
    value = {
        "type": "admin",
        "action": row["action"],
        "actor": row["actor"],
        "reason": row["reason"],
        "detail": orjson.loads(row["detail"]),
    }
    return make_block(ADMIN_BLOCK_PATH, "admin", value)


def admin_block_text(block: Block) -> str:
    return " ".join(str(block.value.get(k, "")) for k in ("action", "actor", "reason")) + (
        "\n" + orjson.dumps(block.value.get("detail", {})).decode()
    )


def _insert(conn: AsyncConnection, table: sa.Table) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


async def existing(
    conn: AsyncConnection, column: sa.Column[Any], values: Iterable[str]
) -> set[str]:
    """Which of ``values`` the column already holds."""
    wanted = list(dict.fromkeys(values))
    found: set[str] = set()
    for i in range(0, len(wanted), _CHUNK):
        chunk = wanted[i : i + _CHUNK]
        found.update((await conn.execute(sa.select(column).where(column.in_(chunk)))).scalars())
    return found


async def take_write_lock(conn: AsyncConnection) -> None:
    """On SQLite, write first: a transaction that reads first and then writes fails
    at once (``database is locked``) when another connection wrote in between,
    while one that starts by writing waits its turn."""
    if conn.dialect.name == "sqlite":
        await conn.execute(sa.text("UPDATE audit_deletions SET id = id WHERE 0 = 1"))


async def store_blocks(conn: AsyncConnection, stored: Sequence[StoredBlock]) -> int:
    """Insert the blocks not yet stored, and their search text; returns how many were new."""
    unique = list({b.digest: b for b in stored}.values())
    if not unique:
        return 0
    have = await existing(conn, audit_blocks.c.digest, (b.digest for b in unique))
    fresh = [b for b in unique if b.digest not in have]
    if not fresh:
        return 0
    await conn.execute(
        _insert(conn, audit_blocks).on_conflict_do_nothing(index_elements=["digest"]),
        [
            {
                "digest": b.digest,
                "kind": b.kind[:32],
                "size": b.size,
                "content": b.content,
                "key_id": b.key_id,
                "first_ts": b.ts,
            }
            for b in fresh
        ],
    )
    texts = [
        {"r": text_rowid(b.digest), "d": b.digest, "b": b.text.replace("\x00", "\ufffd")}
        for b in fresh
        if b.text
    ]
    if texts:
        await conn.execute(_TEXT_INSERT[conn.dialect.name == "postgresql"], texts)
    return len(fresh)


async def delete_blocks(conn: AsyncConnection, digests: Sequence[str]) -> int:
    """Delete blocks and their search text; returns how many blocks went."""
    gone = 0
    postgres = conn.dialect.name == "postgresql"
    text = sa.text(_TEXT_DELETE[postgres]).bindparams(sa.bindparam("ds", expanding=True))
    for i in range(0, len(digests), _CHUNK):
        chunk = list(digests[i : i + _CHUNK])
        await conn.execute(text, {"ds": chunk if postgres else [text_rowid(d) for d in chunk]})
        result = await conn.execute(audit_blocks.delete().where(audit_blocks.c.digest.in_(chunk)))
        gone += int(result.rowcount)
    return gone


async def link_blocks(conn: AsyncConnection, links: Sequence[Mapping[str, Any]]) -> None:
    """Note where blocks first entered each chain (``digest, chain, record_id, ts``)."""
    unique = list({(link["digest"], link["chain"]): link for link in links}.values())
    for i in range(0, len(unique), _CHUNK):
        await conn.execute(
            _insert(conn, audit_block_sessions).on_conflict_do_nothing(
                index_elements=["digest", "chain"]
            ),
            unique[i : i + _CHUNK],
        )


async def chain_records(
    conn: AsyncConnection, rows: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Give each new row its place in its chain and insert it; rows already stored are skipped.

    Rows carry every ``audit_records`` column but ``seq``, ``prev_hash`` and
    ``hash``.  On PostgreSQL each chain is locked for the transaction, so
    replicas append one after the other; elsewhere a racing append fails on
    ``UNIQUE(chain, seq)`` and the caller retries the transaction.  Returns the
    rows inserted, completed.
    """
    have = await existing(conn, audit_records.c.id, (r["id"] for r in rows))
    by_chain: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["id"] not in have:
            have.add(row["id"])
            by_chain[row["chain"]].append(row)
    inserted: list[dict[str, Any]] = []
    for chain in sorted(by_chain):
        await lock_chain(conn, chain)
        seq, prev = await chain_head(conn, chain)
        for row in by_chain[chain]:
            seq += 1
            done = dict(row, seq=seq, prev_hash=prev)
            done["hash"] = prev = record_hash(prev, done)
            inserted.append(done)
    for i in range(0, len(inserted), _CHUNK):
        await conn.execute(audit_records.insert(), inserted[i : i + _CHUNK])
    return inserted


async def lock_chain(conn: AsyncConnection, chain: str) -> None:
    """On PostgreSQL, hold ``chain`` for the rest of the transaction (appends, deletion)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:c, 7))"), {"c": chain}
        )


async def chain_head(conn: AsyncConnection, chain: str) -> tuple[int, str]:
    """``(seq, hash)`` of a chain's last record; after a deletion, of what was deleted."""
    head = (
        await conn.execute(
            sa.select(audit_records.c.seq, audit_records.c.hash)
            .where(audit_records.c.chain == chain)
            .order_by(audit_records.c.seq.desc())
            .limit(1)
        )
    ).first()
    if head is not None:
        return int(head[0]), str(head[1])
    deleted = (
        await conn.execute(
            sa.select(audit_deletions.c.through_seq, audit_deletions.c.last_hash)
            .where(audit_deletions.c.chain == chain)
            .order_by(audit_deletions.c.through_seq.desc())
            .limit(1)
        )
    ).first()
    return (int(deleted[0]), str(deleted[1])) if deleted is not None else (0, "")


async def write_admin_rows(conn: AsyncConnection, rows: Sequence[dict[str, Any]]) -> None:
    """Chain admin rows (from `gatehouse.audit.records.admin_row`) with their text blocks."""
    if not rows:
        return
    blocks = [admin_block(row) for row in rows]
    for row, block in zip(rows, blocks, strict=True):
        row["tail"] = orjson.dumps([[block.path, block.digest]]).decode()
    inserted = await chain_records(conn, rows)
    if not inserted:
        return
    ids = {r["id"] for r in inserted}
    chosen = [(r, b) for r, b in zip(rows, blocks, strict=True) if r["id"] in ids]
    await store_blocks(
        conn,
        [
            StoredBlock(b.digest, "admin", len(b.raw), b.raw, "", admin_block_text(b), r["ts"])
            for r, b in chosen
        ],
    )
    await link_blocks(
        conn,
        [
            {"digest": b.digest, "chain": r["chain"], "record_id": r["id"], "ts": r["ts"]}
            for r, b in chosen
        ],
    )


async def record_admin_events(conn: AsyncConnection, events: Sequence[Event]) -> None:
    """The admin records of whichever ``events`` are administrative, in ``conn``'s transaction."""
    rows = [row for row in (admin_row_for(e) for e in events) if row is not None]
    await write_admin_rows(conn, rows)
