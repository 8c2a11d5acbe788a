"""The write path of every after-the-response record: the spool, then the database.

`Recorder.record` returns once the record is durable in the local spool; the
`SpoolDrainer` delivers it to the database later, so a slow or failed
database never adds latency and never loses a record.  Records are dicts
tagged with a ``kind``; `DatabaseSink` dispatches each kind to its table.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from gatehouse.audit.crypto import Keyring
from gatehouse.audit.store import write_audit
from gatehouse.events import Event
from gatehouse.ledger.usage import UsageRecord
from gatehouse.store.db import Database
from gatehouse.store.spool import Spool

USAGE = "usage"
EVENT = "event"
AUDIT = "audit"

log = logging.getLogger("gatehouse.ledger")


class Recorder:
    def __init__(self, spool: Spool) -> None:
        self._spool = spool

    async def record(self, usage: UsageRecord) -> None:
        entry = usage.to_dict()
        entry["kind"] = USAGE
        await self._spool.append(entry)

    async def event(self, event: Event) -> None:
        """Make ``event`` durable; it reaches the ``events`` table with the next drain."""
        # Nested: an event has a ``kind`` of its own.
        await self._spool.append({"kind": EVENT, "event": event.to_dict()})

    async def audit(self, entry: dict[str, Any]) -> None:
        """Make an audit entry (`gatehouse.audit.capture.AuditCapture.entry`) durable."""
        await self._spool.append(entry)


class DatabaseSink:
    """Delivers spooled records to the database; safe to call twice with the same batch.

    Records of a kind this version does not know (written by a newer Gatehouse
    before a rollback) are appended to ``unknown_kinds`` rather than dropped, so
    the spool keeps moving and nothing is lost.
    """

    def __init__(
        self,
        db: Database,
        unknown_kinds: Path | None = None,
        *,
        audit_keyring: Keyring | None = None,
    ) -> None:
        self._db = db
        self._unknown_kinds = unknown_kinds
        self._audit_keyring = audit_keyring

    async def __call__(self, batch: list[dict[str, Any]]) -> None:
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in batch:
            by_kind[entry.get("kind", USAGE)].append(entry)
        usage = by_kind.pop(USAGE, [])
        if usage:
            await self._db.insert_usage([UsageRecord.from_dict(e) for e in usage])
        events = by_kind.pop(EVENT, [])
        if events:
            await self._db.insert_events([Event.from_dict(e["event"]) for e in events])
        audit = by_kind.pop(AUDIT, [])
        if audit:
            await write_audit(self._db, audit, keyring=self._audit_keyring)
        for kind, entries in by_kind.items():
            log.error(
                "%d spooled records of unknown kind %r set aside in %s",
                len(entries),
                kind,
                self._unknown_kinds,
            )
            if self._unknown_kinds is not None:
                with self._unknown_kinds.open("ab") as out:
                    out.writelines(orjson.dumps(e) + b"\n" for e in entries)
