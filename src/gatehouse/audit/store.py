"""The sink side of the audit store: spooled audit entries into the database.

`write_audit` takes a batch of entries built by `gatehouse.audit.capture`
(``{"kind": "audit", ...}``; ``"type": "admin"`` for an administrative
action) and stores them in one transaction: new blocks (each digest once,
encrypted when a keyring is given) with their search text, the records with
their place in their chain, and where each block entered each chain.  Safe to
call twice with the same batch: stored records and blocks are skipped.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from gatehouse.audit import append
from gatehouse.audit.crypto import Keyring, seal
from gatehouse.audit.records import ADMIN, REQUEST, admin_row, chain_of, clean, dumps, empty_row
from gatehouse.content import Block
from gatehouse.store.db import Database
from gatehouse.store.errors import StoreConflict

log = logging.getLogger("gatehouse.audit")

ATTEMPTS = 5


def admin_entry(
    action: str,
    *,
    actor: str,
    reason: str = "",
    detail: Mapping[str, Any] | None = None,
    ts: float,
    **about: str,
) -> dict[str, Any]:
    """A spool entry for an admin action; ``about``: developer, team, repository, session_id."""
    return {
        "kind": "audit",
        "type": ADMIN,
        "id": f"adm_{uuid.uuid4().hex}",
        "action": action,
        "actor": actor,
        "reason": reason,
        "detail": dict(detail or {}),
        "ts": ts,
        **about,
    }


async def write_audit(
    db: Database, entries: Sequence[Mapping[str, Any]], *, keyring: Keyring | None = None
) -> None:
    """Store a batch of audit entries; idempotent (see the module docstring)."""
    requests = [e for e in entries if e.get("type", REQUEST) == REQUEST]
    admins = [e for e in entries if e.get("type") == ADMIN]
    blocks = _blocks(requests, keyring)
    rows = [_request_row(e) for e in requests]
    admin_rows = [_admin_row(e) for e in admins]
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with db.transaction("store audit records", conflict=True) as conn:
                await append.take_write_lock(conn)
                await append.store_blocks(conn, blocks)
                inserted = await append.chain_records(conn, [dict(r) for r in rows])
                await append.link_blocks(conn, _links(inserted))
                await append.write_admin_rows(conn, [dict(r) for r in admin_rows])
            return
        except StoreConflict:
            # Another replica appended to one of these chains first: take the new head.
            if attempt == ATTEMPTS:
                raise
            log.info("audit chain append raced another writer; retrying (%d)", attempt)


def _blocks(
    entries: Iterable[Mapping[str, Any]], keyring: Keyring | None
) -> list[append.StoredBlock]:
    out: dict[str, append.StoredBlock] = {}
    rejected = 0
    for entry in entries:
        ts = float(entry["ts"])
        for digest, (kind, text) in (entry.get("blocks") or {}).items():
            if digest in out:
                continue
            raw = str(text).encode()
            if hashlib.sha256(raw).hexdigest() != digest:
                rejected += 1
                continue
            value = orjson.loads(raw)
            block = Block("", "", str(kind), value, raw, digest)
            body = append.block_text(block)
            kid, content = seal(digest, raw, keyring)
            out[digest] = append.StoredBlock(digest, str(kind), len(raw), content, kid, body, ts)
    if rejected:
        log.error("%d spooled audit blocks did not match their digest and were skipped", rejected)
    return list(out.values())


def _request_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    row = empty_row(str(entry["id"])[:40], REQUEST, float(entry["ts"]))
    developer = str(entry.get("developer", ""))
    session_id = str(entry.get("session_id", ""))
    row |= {
        "session_id": session_id[:128],
        "chain": str(entry.get("chain") or chain_of(REQUEST, session_id, developer))[:200],
        "developer": developer[:320],
        "team": str(entry.get("team", ""))[:200],
        "repository": str(entry.get("repository", ""))[:500],
        "model": str(entry.get("model", ""))[:200],
        "endpoint": str(entry.get("endpoint", ""))[:200],
        "status": int(entry.get("status") or 0),
        "error_type": str(entry.get("error_type", ""))[:64],
        "usage_id": str(entry.get("usage_id", ""))[:32],
        "cost_micros": entry.get("cost_micros"),
        "ttfb_ms": entry.get("ttfb_ms"),
        "duration_ms": float(entry.get("duration_ms") or 0.0),
        "params": dumps(entry.get("params") or {}),
        "headers": dumps(entry.get("headers") or {}),
        "base_id": entry.get("base_id"),
        "base_len": int(entry.get("base_len") or 0),
        "tail": dumps(entry.get("tail") or []),
        "response": dumps(entry.get("response") or []),
        "guard": str(entry.get("guard", ""))[:16],
        "findings": dumps(entry.get("findings") or []),
        "decision": str(entry.get("decision", ""))[:32],
    }
    return {k: clean(v) for k, v in row.items()}


def _admin_row(entry: Mapping[str, Any]) -> dict[str, Any]:
    about = {k: str(entry.get(k, "")) for k in ("developer", "team", "repository", "session_id")}
    return admin_row(
        str(entry["action"]),
        actor=str(entry.get("actor", "")),
        reason=str(entry.get("reason", "")),
        detail=entry.get("detail") or {},
        ts=float(entry["ts"]),
        record_id=str(entry["id"]) if entry.get("id") else None,
        **about,
    )


def _links(inserted: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    links = []
    for row in inserted:
        for _path, digest in (*orjson.loads(row["tail"]), *orjson.loads(row["response"])):
            links.append(
                {"digest": digest, "chain": row["chain"], "record_id": row["id"], "ts": row["ts"]}
            )
    return links
