"""Audit records as rows: their chain, their hash, and admin records from events.

Pure.  A record's hash is ``sha256(prev_hash || "\\n" || canonical JSON of every
stored field except ``seq`` and ``hash``)``: the block digests it refers to are
in ``tail`` and ``response`` (and, through ``base_id``, in its base record,
itself chained), so altering a record, its envelope or which blocks it names
changes its hash.  ``seq`` is left out so that verify can tell an inserted
record (its successor still links to its predecessor) from an altered one.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from gatehouse.events import Event

REQUEST = "request"
ADMIN = "admin"
ADMIN_CHAIN = "admin"

_UNHASHED = frozenset({"seq", "hash"})

# Events that record an administrative action: each also becomes an 'admin' record.
ADMIN_EVENT_KINDS = frozenset(
    {
        "policy_changed",
        "killswitch_thrown",
        "killswitch_lifted",
        "model_proposed",
        "model_approved",
        "model_revoked",
        "repo_access_requested",
        "repo_access_approved",
        "repo_access_denied",
        "budget_changed",
        "budget_exception_granted",
        "user_deprovisioned",
        "user_reactivated",
        "user_deleted",
        "key_created",
        "key_revoked",
        "audit_hold_placed",
        "audit_hold_released",
        "audit_retention_set",
        "audit_deleted",
    }
)
_ACTOR_FIELDS = ("actor", "author", "decided_by", "granted_by", "by", "created_by")
_REASON_FIELDS = ("reason", "decision_reason")


def chain_of(kind: str, session_id: str, developer: str) -> str:
    """The chain a record joins: its session, else its developer; admin records one of their own."""
    if kind == ADMIN:
        return ADMIN_CHAIN
    return session_id or f"dev:{developer}"


def record_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    # str(): column names read back from the database are a str subclass orjson refuses.
    fields = {str(k): v for k, v in row.items() if k not in _UNHASHED}
    body = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()


def dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


def clean(value: Any) -> Any:
    # PostgreSQL rejects NUL in text; a record that can never be stored would
    # stall the spool.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def empty_row(record_id: str, kind: str, ts: float) -> dict[str, Any]:
    """Every column of ``audit_records`` but the chain position, at its neutral value."""
    return {
        "id": record_id,
        "kind": kind,
        "ts": float(ts),
        "session_id": "",
        "chain": "",
        "developer": "",
        "team": "",
        "repository": "",
        "model": "",
        "endpoint": "",
        "status": 0,
        "error_type": "",
        "usage_id": "",
        "cost_micros": None,
        "ttfb_ms": None,
        "duration_ms": 0.0,
        "params": "{}",
        "headers": "{}",
        "base_id": None,
        "base_len": 0,
        "tail": "[]",
        "response": "[]",
        "guard": "",
        "findings": "[]",
        "decision": "",
        "action": "",
        "actor": "",
        "reason": "",
        "detail": "{}",
    }


def admin_row(
    action: str,
    *,
    actor: str,
    reason: str = "",
    detail: Mapping[str, Any] | None = None,
    developer: str = "",
    team: str = "",
    repository: str = "",
    session_id: str = "",
    ts: float,
    record_id: str | None = None,
) -> dict[str, Any]:
    """An unchained 'admin' record: who did what, when and why."""
    row = empty_row(record_id or f"adm_{uuid.uuid4().hex}", ADMIN, ts)
    row |= {
        "chain": ADMIN_CHAIN,
        "action": action[:64],
        "actor": actor[:320],
        "reason": reason,
        "detail": dumps(dict(detail or {})),
        "developer": developer[:320],
        "team": team[:200],
        "repository": repository[:500],
        "session_id": session_id[:128],
    }
    return {k: clean(v) for k, v in row.items()}


def admin_row_for(event: Event) -> dict[str, Any] | None:
    """The admin record an administrative event implies (``None`` for other events).

    Its id derives from the event's, so a re-delivered event adds nothing.
    """
    if event.kind not in ADMIN_EVENT_KINDS:
        return None
    detail = event.detail if isinstance(event.detail, dict) else {}
    actor = next((str(detail[f]) for f in _ACTOR_FIELDS if detail.get(f)), "")
    if not actor and event.kind.startswith("user_"):
        actor = "scim"
    reason = next((str(detail[f]) for f in _REASON_FIELDS if detail.get(f)), "")
    return admin_row(
        event.kind,
        actor=actor,
        reason=reason,
        detail={"subject": event.subject, "severity": event.severity, **detail},
        developer=event.developer,
        team=event.team,
        repository=event.repository,
        session_id=event.session_id,
        ts=event.ts,
        record_id=f"ev_{event.id}"[:40],
    )


def admin_text(row: Mapping[str, Any]) -> str:
    """What search reads of an admin record: action, actor, reason and detail."""
    return " ".join(str(row[k]) for k in ("action", "actor", "reason", "detail") if row[k])
