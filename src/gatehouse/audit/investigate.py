"""From one guardrail or policy event to everything around it, timed and itself recorded.

An event (``events``: a guardrail finding, a policy refusal, a repository
claim mismatch…) names a session, a developer, a repository and usually the
request (``detail.request_id``).  `investigate` follows those to the session's
full transcript with the request marked, the other events of the session, the
developer's other sessions and the repository's other sessions — the
"mean time to investigate" in one call.  Each investigation is recorded as an
``audit_investigated`` event (who, what, how long), so reading the audit trail
leaves a trail of its own.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from gatehouse.audit.crypto import Keyring
from gatehouse.audit.search import Filters, SearchResult, search
from gatehouse.audit.store import admin_entry, write_audit
from gatehouse.audit.transcript import Transcript, rebuild
from gatehouse.errors import NotFound
from gatehouse.events import Event
from gatehouse.guardrails.engine import mask
from gatehouse.store.db import Database
from gatehouse.store.schema import events, row_to_event

INVESTIGATED = "audit_investigated"
TRANSCRIPT_READ = "audit_transcript_read"
SEARCHED = "audit_searched"
WINDOW_SECONDS = 30 * 86400  # how far back around the event to list other sessions
_SESSIONS_SHOWN = 50
_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9]")


@dataclass(slots=True)
class Investigation:
    subject: str  # what was asked about: an event id, a request id or a session
    event: Event | None
    record_id: str
    session: str
    developer: str
    repository: str
    transcript: Transcript | None
    session_events: list[Event] = field(default_factory=list)
    developer_sessions: list[dict[str, Any]] = field(default_factory=list)
    repository_sessions: list[dict[str, Any]] = field(default_factory=list)
    elapsed_ms: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "event": self.event.to_dict() if self.event else None,
            "record_id": self.record_id,
            "session": self.session,
            "developer": self.developer,
            "repository": self.repository,
            "transcript": self.transcript.to_json() if self.transcript else None,
            "session_events": [e.to_dict() for e in self.session_events],
            "developer_sessions": self.developer_sessions,
            "repository_sessions": self.repository_sessions,
            "elapsed_ms": round(self.elapsed_ms, 2),
        }


async def investigate(
    db: Database,
    subject: str,
    *,
    actor: str,
    via: str,
    keyring: Keyring | None = None,
) -> Investigation:
    """Everything around ``subject`` (an event id, else a request id); recorded with ``actor``."""
    started = time.perf_counter()
    subject = subject.strip()
    event = await _event(db, subject)
    record_id = str(event.detail.get("request_id", "")) if event else subject
    record = await _record(db, record_id) if record_id else None
    if event is None and record is None:
        raise NotFound(
            f"no event or audited request {subject!r}: take the id from `gatehouse events` "
            "or the admin API's /v1/events"
        )
    session = (record["chain"] if record else "") or (event.session_id if event else "")
    developer = (event.developer if event else "") or (record["developer"] if record else "")
    repository = (event.repository if event else "") or (record["repository"] if record else "")
    if not session:
        raise NotFound(
            f"event {subject!r} names no session or audited request: nothing was recorded "
            "to investigate (was GATEHOUSE_AUDIT off?)"
        )
    around = event.ts if event else float(record["ts"] if record else time.time())
    since = around - WINDOW_SECONDS
    try:
        transcript: Transcript | None = await rebuild(db, session, keyring)
    except NotFound:
        transcript = None  # the event's session was never audited or has been collected
    found = Investigation(
        subject=subject,
        event=event,
        record_id=record_id if record else "",
        session=session,
        developer=developer,
        repository=repository,
        transcript=transcript,
        session_events=await _session_events(db, session),
        developer_sessions=await sessions_of(db, "developer", developer, since)
        if developer
        else [],
        repository_sessions=await sessions_of(db, "repository", repository, since)
        if repository
        else [],
    )
    found.elapsed_ms = (time.perf_counter() - started) * 1000
    await record_reading(
        db,
        INVESTIGATED,
        actor=actor,
        via=via,
        subject=f"{actor} investigated {subject} ({found.elapsed_ms:,.0f} ms)",
        detail={
            "subject": subject,
            "event_kind": event.kind if event else "",
            "request_id": found.record_id,
            "elapsed_ms": round(found.elapsed_ms, 1),
        },
        developer=developer,
        repository=repository,
        session_id=session,
    )
    return found


async def searched(
    db: Database, query: str, filters: Filters, *, limit: int, actor: str, via: str
) -> SearchResult:
    """`search`, recorded as a reading (the query's long tokens masked: it may be a key)."""
    found = await search(db, query, filters, limit=limit)
    given = {k: v for k, v in dataclasses.asdict(filters).items() if v not in ("", None)}
    await record_reading(
        db,
        SEARCHED,
        actor=actor,
        via=via,
        subject=f"{actor} searched the audit trail",
        detail={"query": masked_query(query), "filters": given, "hits": len(found.hits)},
    )
    return found


async def read_transcript(
    db: Database, session: str, keyring: Keyring | None, *, fmt: str, actor: str, via: str
) -> Transcript:
    """`rebuild`, recorded as a reading."""
    found = await rebuild(db, session, keyring)
    await record_reading(
        db,
        TRANSCRIPT_READ,
        actor=actor,
        via=via,
        subject=f"{actor} read the transcript of session {found.session}",
        detail={"format": fmt, "requests": len(found.turns)},
        developer=found.developer,
        repository=found.repository,
        session_id=found.session,
    )
    return found


def masked_query(query: str) -> str:
    """The query as recorded: a token that looks like a credential is masked.

    Investigators search for the leaked key itself; the record of the search must
    not become one more copy of it.
    """
    return " ".join(
        mask(word) if len(word) >= 12 and _LETTER.search(word) and _DIGIT.search(word) else word
        for word in query.split()
    )


async def record_reading(
    db: Database,
    kind: str,
    *,
    actor: str,
    via: str,
    subject: str,
    detail: dict[str, Any],
    developer: str = "",
    repository: str = "",
    session_id: str = "",
) -> None:
    """Record that someone read the audit trail: who (``actor``), how (``via``) and what.

    An event (for operators' feeds) and an admin record in the audit trail's own
    hash chain (so the reading cannot be quietly removed).
    """
    about = {"developer": developer, "repository": repository, "session_id": session_id}
    detail = {"actor": actor, "via": via, **detail}
    event = Event(
        kind=kind,
        subject=subject,
        developer=developer,
        repository=repository,
        session_id=session_id,
        detail=detail,
    )
    await db.insert_events([event])
    entry = admin_entry(kind, actor=actor, detail=detail, ts=time.time(), **about)
    await write_audit(db, [entry])


async def _event(db: Database, event_id: str) -> Event | None:
    rows = await db.fetch_all(sa.select(events).where(events.c.id == event_id), "read the event")
    return row_to_event(rows[0]) if rows else None


async def _record(db: Database, record_id: str) -> sa.RowMapping | None:
    query = sa.text(
        "SELECT id, chain, ts, developer, repository FROM audit_records WHERE id = :id"
    ).bindparams(id=record_id)
    rows = await db.fetch_all(query, "read the audit record")
    return rows[0] if rows else None


async def _session_events(db: Database, session: str) -> list[Event]:
    query = (
        sa.select(events)
        .where(events.c.session_id == session)
        .order_by(events.c.ts, events.c.id)
        .limit(1000)
    )
    return [row_to_event(row) for row in await db.fetch_all(query, "read the session's events")]


async def sessions_of(db: Database, column: str, value: str, since: float) -> list[dict[str, Any]]:
    """The sessions of one developer or repository since ``since``, latest first, with counts."""
    if column not in ("developer", "repository"):
        raise ValueError(column)
    query = sa.text(
        "SELECT chain, MIN(ts) AS first_ts, MAX(ts) AS last_ts, COUNT(*) AS requests, "  # noqa: S608 -- column checked above
        "SUM(COALESCE(cost_micros, 0)) AS cost_micros, "
        "SUM(CASE WHEN guard IN ('flagged', 'redacted', 'blocked') THEN 1 ELSE 0 END) "
        "AS guarded, "
        "SUM(CASE WHEN decision LIKE 'denied%' THEN 1 ELSE 0 END) AS denied, "
        "MIN(developer) AS developer, MIN(repository) AS repository "
        f"FROM audit_records WHERE {column} = :value AND kind = 'request' AND ts >= :since "
        "GROUP BY chain ORDER BY MAX(ts) DESC LIMIT :limit"
    ).bindparams(value=value, since=since, limit=_SESSIONS_SHOWN)
    rows = await db.fetch_all(query, f"read the {column}'s sessions")
    return [
        {
            "session": row["chain"],
            "developer": row["developer"],
            "repository": row["repository"],
            "first_ts": float(row["first_ts"]),
            "last_ts": float(row["last_ts"]),
            "requests": int(row["requests"]),
            "cost_micros": int(row["cost_micros"] or 0),
            "guarded": int(row["guarded"] or 0),
            "denied": int(row["denied"] or 0),
        }
        for row in rows
    ]
