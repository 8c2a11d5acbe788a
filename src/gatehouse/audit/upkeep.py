"""The audit trail's housekeeping in a running gateway: daily roots, then retention.

Every ``interval`` seconds (an hour by default) `AuditUpkeep` seals the days
that have ended (`chain.seal_days`) and deletes what retention no longer keeps
(`retention.gc`, which honours legal holds and records each deletion).  Both
are safe on several replicas at once.  A failure (the database away) is logged
and tried again at the next round; nothing is lost by waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from gatehouse.audit.chain import seal_days
from gatehouse.audit.retention import gc
from gatehouse.errors import GatewayError
from gatehouse.store.db import Database

log = logging.getLogger("gatehouse.audit")


class AuditUpkeep:
    def __init__(self, db: Database, *, retention_days: int, interval: float = 3600.0) -> None:
        self._db = db
        self._retention_days = retention_days
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="gatehouse-audit-upkeep")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def round(self) -> None:
        """One round: seal finished days, then apply retention."""
        now = time.time()
        sealed = await seal_days(self._db, now)
        if sealed:
            log.info("audit trail: sealed %s", ", ".join(sealed))
        report = await gc(self._db, now, default_days=self._retention_days)
        if report.records:
            log.info(
                "audit trail: retention deleted %d records and %d blocks",
                report.records,
                report.blocks,
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.round()
            except GatewayError as exc:
                log.warning(
                    "audit upkeep failed, retrying in %.0f s: %s", self._interval, exc.message
                )
