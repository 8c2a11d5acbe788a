"""The durable spool every after-the-response record goes through.

A record — a JSON-able dict tagged with its ``"kind"``, such as
``{"kind": "usage", **usage.to_dict()}`` — is appended to the :class:`Spool`
before anything else happens to it.  :meth:`Spool.append` returns only once
the record is on disk, and a :class:`SpoolDrainer` later hands it to a sink
(the database).  A slow or failed database therefore never adds latency to a
request and never loses a record: the spool just grows until it is back.

Appends are group-committed: the records appended while one fsync is in
flight, or within ``sync_interval`` of the previous one, share the next.
Writes and fsyncs run in a thread of the spool's own, so the event loop never
waits on the disk.  Each process writes fresh segments, never after what a
previous process may have left torn; the file format is in ``segments.py``.

The drainer's contract with its sink is *at least once*: a record is handed
over until a sink call that includes it returns without raising, and the
checkpoint moves past it only after that.  A crash between the sink's success
and the checkpoint write means the sink sees those records again after the
restart, so every sink must be idempotent (``Database.insert_usage`` skips
ids it already holds).  Records reach the sink in the order they were appended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import weakref
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from gatehouse.store import segments
from gatehouse.store.errors import SpoolError
from gatehouse.store.segments import Chunk, Position

log = logging.getLogger(__name__)

Sink = Callable[[list[dict[str, Any]]], Awaitable[None]]
"""Takes a batch of records; returns once they are stored, raises if they are not."""

FIRST_BACKOFF = 0.05
READ_BUDGET = 8 << 20


class Spool:
    """An append-only, crash-safe record log in one directory, owned by one process."""

    def __init__(
        self,
        directory: Path,
        *,
        sync_interval: float = 0.0,
        segment_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.directory = Path(directory)
        self.sync_interval = sync_interval
        self.appended = 0
        """Records made durable since :meth:`open`."""
        self._writer = segments.SegmentWriter(self.directory, segment_bytes)
        self._executor: ThreadPoolExecutor | None = None
        self._finalizer: weakref.finalize[..., Spool] | None = None
        self._listeners: list[Callable[[], None]] = []
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._last_flush = float("-inf")
        self._open = False
        # The newest (segment, size) acknowledged to appenders; replaced as one
        # tuple so that readers in other threads always see a consistent pair.
        self._durable: tuple[int, int] | None = None

    @property
    def first_segment(self) -> int:
        """The first segment this process writes; older ones were left from before."""
        return self._writer.first_segment

    async def open(self) -> None:
        """Create the directory (mode 0700) and lock it; :class:`SpoolLocked` if taken."""
        if self._open:
            return
        self._durable, self._last_flush = None, float("-inf")
        executor = ThreadPoolExecutor(1, thread_name_prefix="gatehouse-spool")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._writer.open)
        except BaseException:
            self._writer.close()
            executor.shutdown(wait=False)
            raise
        self._executor = executor
        # Dropped without close (a crash, as tests simulate it): still unlock.
        self._finalizer = weakref.finalize(self, _release, self._writer, executor)
        self._open = True

    async def close(self) -> None:
        """Finish the pending writes, then release the directory."""
        if not self._open:
            return
        self._open = False
        while self._flusher is not None:
            await asyncio.shield(self._flusher)
        await self._in_writer(self._writer.close)
        if self._finalizer is not None:
            self._finalizer()

    async def append(self, record: dict[str, Any]) -> None:
        """Return once ``record`` is durably on disk; :class:`SpoolError` if it cannot be.

        ``record`` must be serialisable by orjson (``TypeError`` if not).  A
        caller cancelled while waiting may still find its record written.
        """
        if not self._open:
            raise SpoolError(f"spool {self.directory} is not open")
        line = segments.encode(record)
        waiter = asyncio.get_running_loop().create_future()
        self._pending.append(line)
        self._waiters.append(waiter)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_pending())
        await waiter

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the event loop) whenever new records become durable."""
        self._listeners.append(callback)

    async def _flush_pending(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                delay = self._last_flush + self.sync_interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                lines, waiters = self._pending, self._waiters
                self._pending, self._waiters = [], []
                self._last_flush = loop.time()
                try:
                    self._durable = await self._in_writer(self._writer.write, b"".join(lines))
                except OSError as exc:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_exception(
                                SpoolError(f"cannot write to spool {self.directory}: {exc}")
                            )
                    continue
                self.appended += len(lines)
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(None)
                for callback in self._listeners:
                    callback()
        finally:
            self._flusher = None

    async def _in_writer(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # -- for the drainer --------------------------------------------------------

    def segment_path(self, segment: int) -> Path:
        return segments.segment_path(self.directory, segment)

    def segments(self) -> list[int]:
        """Numbers of the segment files present, in order."""
        return segments.list_segments(self.directory)

    async def read(self, start: Position, *, limit: int) -> Chunk:
        """Up to ``limit`` durable records from ``start`` on."""
        args = (self.directory, self.first_segment, self._durable, start, limit, READ_BUDGET)
        return await asyncio.to_thread(segments.read, *args)

    async def count(self, start: Position) -> tuple[int, int]:
        """Lines durable from ``start`` on, and :attr:`appended` at that same moment."""
        args = (self.directory, self.first_segment, self._durable, start)
        appended = self.appended
        return await asyncio.to_thread(segments.count, *args), appended

    async def load_checkpoint(self) -> Position:
        return await asyncio.to_thread(segments.read_checkpoint, self.directory)

    async def save_checkpoint(self, position: Position) -> None:
        """Record everything before ``position`` as delivered; delete the segments it passed."""
        await asyncio.to_thread(segments.write_checkpoint, self.directory, position)
        await asyncio.to_thread(segments.delete_segments_before, self.directory, position.segment)


def _release(writer: segments.SegmentWriter, executor: ThreadPoolExecutor) -> None:
    writer.close()
    executor.shutdown(wait=False)


class SpoolDrainer:
    """Replays what a previous process left in the spool, then follows new appends.

    While the sink fails (say the database is down) the drainer retries with
    exponential backoff up to ``max_backoff`` seconds; nothing is dropped, the
    spool just grows.  Close the drainer before closing its spool.
    """

    def __init__(
        self,
        spool: Spool,
        sink: Sink,
        *,
        batch_size: int = 500,
        linger: float = 0.25,
        max_backoff: float = 30.0,
        close_deadline: float = 5.0,
    ) -> None:
        self.spool = spool
        self.sink = sink
        self.batch_size = batch_size
        self.linger = linger
        """Seconds to let records gather before a delivery: the records are durable
        already, and one database transaction (and checkpoint) per batch instead of
        per record keeps the drainer off the request path's back."""
        self.max_backoff = max_backoff
        self.close_deadline = close_deadline
        self.delivered = 0
        """Records the sink accepted since :meth:`start` (a replayed record counts again)."""
        self.skipped = 0
        """Corrupt lines skipped since :meth:`start`."""
        self.last_error: str | None = None
        """Why the last attempt to deliver failed; ``None`` once a delivery succeeds."""
        self._position = Position(0, 0)
        self._saved = Position(0, 0)
        self._expected = 0
        self._appended_at_start = 0
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    @property
    def backlog(self) -> int:
        """Records durable in the spool and not yet delivered."""
        expected = self._expected + self.spool.appended - self._appended_at_start
        return max(0, expected - self.delivered - self.skipped)

    @property
    def running(self) -> bool:
        """The delivery task is alive (it may be retrying a failing sink)."""
        return self._task is not None and not self._task.done()

    @property
    def healthy(self) -> bool:
        """Running, and the most recent delivery (if any) succeeded.

        ``False`` during a database outage even though no record is at risk;
        a readiness probe may prefer to report that as degraded.
        """
        return self._task is not None and not self._task.done() and self.last_error is None

    async def start(self) -> None:
        """Find where the last process stopped, count what is left, and start delivering."""
        if self._task is not None:
            raise RuntimeError("the drainer is already started")
        if not self.spool._open:
            raise SpoolError(f"open spool {self.spool.directory} before starting its drainer")
        self._position = self._saved = await self.spool.load_checkpoint()
        self._expected, self._appended_at_start = await self.spool.count(self._position)
        if self._expected:
            log.info("spool %s: %d records to replay", self.spool.directory, self._expected)
        self.spool.add_listener(self._wake.set)
        self._task = asyncio.create_task(self._run(), name=f"spool-drainer {self.spool.directory}")

    async def close(self) -> None:
        """Deliver what can be delivered within ``close_deadline`` seconds, then stop.

        What is left stays in the spool for the next start.
        """
        if self._task is None:
            return
        self._stopping.set()
        self._wake.set()
        self._hurry.set()
        await asyncio.wait([self._task], timeout=self.close_deadline)
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task])
        if not self._task.cancelled():
            self._task.exception()  # logged in _run already; mark it retrieved

    async def flush(self) -> None:
        """Return once every record durable so far has been delivered."""
        self._hurry.set()
        self._wake.set()
        async with self._progress:
            await self._progress.wait_for(lambda: self.backlog == 0 or self._stopped())

    def _stopped(self) -> bool:
        return self._task is None or self._task.done()

    async def _run(self) -> None:
        try:
            await self._follow()
        except Exception as exc:
            self.last_error = f"the drainer stopped: {_describe(exc)}"
            log.exception("spool %s: the drainer stopped", self.spool.directory)
            raise
        finally:
            await self._notify()

    async def _follow(self) -> None:
        while True:
            self._wake.clear()
            chunk = await self._read()
            if chunk is None:
                if self._stopping.is_set():
                    return
                continue
            if chunk.records and not await self._deliver(chunk.records):
                return  # stopping while the sink still fails
            self._position = chunk.end
            self.delivered += len(chunk.records)
            self.skipped += chunk.skipped
            if self._position != self._saved:
                await self._save_checkpoint()
            await self._notify()
            if chunk.records or chunk.skipped:
                continue
            if self._stopping.is_set():
                return
            await self._wake.wait()
            await self._gather()

    async def _gather(self) -> None:
        """Wait up to ``linger`` for more records, unless asked to hurry or stop."""
        if self.linger <= 0 or self._stopping.is_set() or self._hurry.is_set():
            self._hurry.clear()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._hurry.wait(), self.linger)
        self._hurry.clear()

    async def _read(self) -> Chunk | None:
        try:
            return await self.spool.read(self._position, limit=self.batch_size)
        except OSError as exc:
            await self._failed(f"cannot read spool {self.spool.directory}: {exc}", 0)
            return None

    async def _deliver(self, records: list[dict[str, Any]]) -> bool:
        """Hand ``records`` to the sink until it succeeds; ``False`` if told to stop first."""
        attempt = 0
        while True:
            try:
                await self.sink(records)
            except Exception as exc:  # noqa: BLE001 - any sink failure is retried, never fatal
                if self._stopping.is_set():
                    self.last_error = _describe(exc)
                    return False
                await self._failed(_describe(exc), attempt)
                attempt += 1
                continue
            if self.last_error is not None:
                log.info("spool %s: delivering again", self.spool.directory)
            self.last_error = None
            return True

    async def _failed(self, error: str, attempt: int) -> None:
        """Note ``error`` and wait out the backoff (cut short by :meth:`close`)."""
        if self.last_error is None:
            log.warning("spool %s: delivery failed, will retry: %s", self.spool.directory, error)
        self.last_error = error
        await self._notify()
        delay = min(self.max_backoff, FIRST_BACKOFF * 2 ** min(attempt, 20))
        delay *= random.uniform(0.5, 1.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _save_checkpoint(self) -> None:
        try:
            await self.spool.save_checkpoint(self._position)
        except OSError as exc:
            # Delivery goes on; a crash before the next good checkpoint only
            # means some records are delivered twice.
            log.error("spool %s: cannot save checkpoint: %s", self.spool.directory, str(exc))
            return
        self._saved = self._position

    async def _notify(self) -> None:
        async with self._progress:
            self._progress.notify_all()


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
