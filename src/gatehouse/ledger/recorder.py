"""The write path of every after-the-response record: the spool, then the database.

`Recorder.record` returns once the record is durable in the local spool; the
`SpoolDrainer` delivers it to the database later, so a slow or failed
database never adds latency and never loses a record.  Records are dicts
tagged with a ``kind``; `DatabaseSink` dispatches each kind to its table.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from gatehouse.ledger.usage import UsageRecord
from gatehouse.store.db import Database
from gatehouse.store.spool import Spool

USAGE = "usage"

log = logging.getLogger("gatehouse.ledger")


class Recorder:
    def __init__(self, spool: Spool) -> None:
        self._spool = spool

    async def record(self, usage: UsageRecord) -> None:
        entry = usage.to_dict()
        entry["kind"] = USAGE
        await self._spool.append(entry)


class DatabaseSink:
    """Delivers spooled records to the database; safe to call twice with the same batch."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def __call__(self, batch: list[dict[str, Any]]) -> None:
        by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in batch:
            by_kind[entry.get("kind", USAGE)].append(entry)
        usage = by_kind.pop(USAGE, [])
        if usage:
            await self._db.insert_usage([UsageRecord.from_dict(e) for e in usage])
        for kind, entries in by_kind.items():
            # Written by a newer Gatehouse (a rollback); say so rather than block the spool.
            log.error("skipping %d spooled records of unknown kind %r", len(entries), kind)
