"""The durable spool and its drainer, against the real file system."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import gatehouse
from gatehouse.store import segments
from gatehouse.store.errors import SpoolError, SpoolLocked
from gatehouse.store.segments import Position, decode, encode
from gatehouse.store.spool import Spool, SpoolDrainer


class DictSink:
    """Stands in for the database: keyed by id, so a replayed record is stored once."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}
        self.calls: list[list[str]] = []
        self.failures_left = 0
        self.failures: asyncio.Queue[int] = asyncio.Queue()

    async def __call__(self, records: list[dict[str, Any]]) -> None:
        self.calls.append([r["id"] for r in records])
        if self.failures_left:
            # Store half first: a real database may commit nothing, but the
            # drainer must not care either way.
            for record in records[: len(records) // 2]:
                self.stored[record["id"]] = record
            self.failures_left -= 1
            self.failures.put_nowait(len(records))
            raise ConnectionError("database is down")
        for record in records:
            self.stored[record["id"]] = record

    @property
    def sent(self) -> list[str]:
        return [rid for call in self.calls for rid in call]


def record(n: int, **extra: Any) -> dict[str, Any]:
    return {"kind": "test", "id": f"r{n:05d}", **extra}


async def open_spool(directory: Path, **kwargs: Any) -> Spool:
    spool = Spool(directory, **kwargs)
    await spool.open()
    return spool


async def start_drainer(spool: Spool, sink: DictSink, **kwargs: Any) -> SpoolDrainer:
    drainer = SpoolDrainer(spool, sink, max_backoff=0.02, **kwargs)
    await drainer.start()
    return drainer


async def idle(drainer: SpoolDrainer) -> None:
    async with asyncio.timeout(10):
        await drainer.flush()


async def halt(drainer: SpoolDrainer) -> None:
    """Stop the drainer as ``kill -9`` would: no final delivery, no checkpoint."""
    assert drainer._task is not None
    drainer._task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await drainer._task


def die(spool: Spool) -> None:
    """What the kernel does for a killed process: close its files, and so drop its flock."""
    assert spool._finalizer is not None
    spool._finalizer()


@given(
    st.dictionaries(
        st.text(),
        st.recursive(
            st.none()
            | st.booleans()
            | st.integers(-(2**63), 2**63 - 1)
            | st.floats(allow_nan=False, allow_infinity=False)
            | st.text(),
            lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
            max_leaves=10,
        ),
    )
)
def test_a_line_decodes_to_the_record_it_encodes(value: dict[str, Any]) -> None:
    line = encode(value)
    assert line.endswith(b"\n")
    assert line.count(b"\n") == 1
    assert decode(line) == value


@pytest.mark.parametrize(
    "line",
    [b"", b"\n", b"garbage\n", b"00000000 {}\n", encode({"a": 1})[:-3] + b"2}\n", encode([1])],
)
def test_a_damaged_line_decodes_to_none(line: bytes) -> None:
    assert decode(line) is None


async def test_appended_records_reach_the_sink_in_order(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path / "spool")
    sink = DictSink()
    drainer = await start_drainer(spool, sink)
    for n in range(100):
        await spool.append(record(n, text="naïve ✓"))
    await idle(drainer)
    assert sink.sent == [f"r{n:05d}" for n in range(100)]
    assert sink.stored["r00007"] == record(7, text="naïve ✓")
    assert (drainer.backlog, drainer.delivered, drainer.healthy) == (0, 100, True)
    await drainer.close()
    await spool.close()
    assert (tmp_path / "spool" / "checkpoint").exists()
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700


async def test_concurrent_appends_share_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    syncs = 0
    real_sync = segments.datasync

    def counting_sync(fd: int) -> None:
        nonlocal syncs
        syncs += 1
        real_sync(fd)

    monkeypatch.setattr(segments, "datasync", counting_sync)
    spool = await open_spool(tmp_path)
    await asyncio.gather(*(spool.append(record(n)) for n in range(500)))
    await spool.close()
    assert spool.appended == 500
    assert syncs < 50


async def test_a_torn_last_line_and_a_corrupt_line_are_skipped(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)
    for n in range(3):
        await spool.append(record(n))
    await spool.close()
    segment = spool.segment_path(spool.first_segment)
    lines = segment.read_bytes().splitlines(keepends=True)
    corrupt = lines[1].replace(b"r00001", b"r99999")  # same length, wrong checksum
    torn = encode(record(3))[:20]
    segment.write_bytes(lines[0] + corrupt + lines[2] + torn)

    spool = await open_spool(tmp_path)
    sink = DictSink()
    drainer = await start_drainer(spool, sink)
    assert drainer.backlog == 3  # newline-terminated lines; the torn one is not counted
    await idle(drainer)
    assert sink.sent == ["r00000", "r00002"]
    assert drainer.skipped == 1
    # New appends go to a fresh segment, never after the torn tail.
    await spool.append(record(4))
    await idle(drainer)
    assert sink.sent[-1] == "r00004"
    await drainer.close()
    await spool.close()


async def test_after_a_crash_exactly_the_undelivered_records_are_replayed(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)
    sink = DictSink()
    drainer = await start_drainer(spool, sink)
    for n in range(10):
        await spool.append(record(n))
    await idle(drainer)
    sink.failures_left = 10**6  # the database goes away ...
    for n in range(10, 20):
        await spool.append(record(n))
    await sink.failures.get()
    await halt(drainer)  # ... and then the gateway dies
    die(spool)

    spool = await open_spool(tmp_path)
    sink = DictSink()
    drainer = await start_drainer(spool, sink)
    await idle(drainer)
    assert sink.sent == [f"r{n:05d}" for n in range(10, 20)]
    await drainer.close()
    await spool.close()


async def test_unacknowledged_appends_of_a_dropped_spool_are_replayed(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)
    for n in range(25):
        await spool.append(record(n))
    del spool
    gc.collect()  # a Spool dropped without close still releases its files and flock

    spool = await open_spool(tmp_path)
    sink = DictSink()
    drainer = await start_drainer(spool, sink)
    assert drainer.backlog == 25
    await idle(drainer)
    assert sink.sent == [f"r{n:05d}" for n in range(25)]
    await drainer.close()
    await spool.close()


async def test_a_crash_before_the_checkpoint_only_redelivers(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)

    async def checkpoint_fails(position: Position) -> None:
        raise OSError("disk full")

    spool.save_checkpoint = checkpoint_fails  # type: ignore[method-assign]
    sink = DictSink()
    drainer = await start_drainer(spool, sink)
    for n in range(5):
        await spool.append(record(n))
    await idle(drainer)
    await halt(drainer)
    die(spool)

    spool = await open_spool(tmp_path)
    drainer = await start_drainer(spool, sink)
    await idle(drainer)
    assert sorted(sink.stored) == [f"r{n:05d}" for n in range(5)]
    assert len(sink.sent) == 10  # each record sent twice, stored once
    await drainer.close()
    await spool.close()


async def test_a_failing_sink_loses_nothing_and_recovers(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)
    sink = DictSink()
    sink.failures_left = 10**6
    drainer = await start_drainer(spool, sink, batch_size=7)
    for n in range(50):
        await spool.append(record(n))
    await sink.failures.get()
    await sink.failures.get()  # the first failure has been noted by now
    assert drainer.last_error == "ConnectionError: database is down"
    assert not drainer.healthy
    assert drainer.backlog == 50
    sink.failures_left = 0
    await idle(drainer)
    assert sorted(sink.stored) == [f"r{n:05d}" for n in range(50)]
    assert (drainer.last_error, drainer.healthy, drainer.backlog) == (None, True, 0)
    assert drainer.delivered == 50
    await drainer.close()
    await spool.close()


async def test_backlog_counts_replayed_and_new_records(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)
    for n in range(10):
        await spool.append(record(n))
    die(spool)

    spool = await open_spool(tmp_path)
    sink = DictSink()
    sink.failures_left = 10**6
    drainer = await start_drainer(spool, sink)
    await sink.failures.get()
    assert drainer.backlog == 10
    for n in range(10, 15):
        await spool.append(record(n))
    assert drainer.backlog == 15
    sink.failures_left = 0
    await idle(drainer)
    assert len(sink.stored) == 15
    await drainer.close()
    await spool.close()


async def test_segments_roll_over_and_are_deleted_once_drained(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path, segment_bytes=1024)
    for n in range(60):
        await spool.append(record(n, pad="x" * 80))
    assert len(spool.segments()) >= 5
    assert all(spool.segment_path(s).stat().st_size < 1024 + 200 for s in spool.segments())
    sink = DictSink()
    drainer = await start_drainer(spool, sink)
    await idle(drainer)
    assert sink.sent == [f"r{n:05d}" for n in range(60)]
    assert spool.segments() == [max(spool.segments())]
    await drainer.close()
    await spool.close()

    # Restarting replays nothing, and retires the last segment of the old process.
    spool = await open_spool(tmp_path, segment_bytes=1024)
    sink = DictSink()
    drainer = await start_drainer(spool, sink)
    assert drainer.backlog == 0
    await spool.append(record(100))
    await idle(drainer)
    assert sink.sent == ["r00100"]
    assert spool.segments() == [spool.first_segment]
    await drainer.close()
    await spool.close()


async def test_a_second_process_cannot_open_the_same_spool(tmp_path: Path) -> None:
    first = await open_spool(tmp_path / "spool")
    second = Spool(tmp_path / "spool")
    expected = re.escape(f"{tmp_path / 'spool'} is in use by another process (pid {os.getpid()})")
    with pytest.raises(SpoolLocked, match=expected):
        await second.open()
    await first.close()
    await second.open()
    await second.close()


async def test_append_on_a_closed_spool_raises(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)
    await spool.close()
    with pytest.raises(SpoolError, match="not open"):
        await spool.append(record(0))


async def test_a_failed_fsync_fails_the_append_and_writing_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_sync = segments.datasync
    calls = 0

    def sync_fails_once(fd: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError(5, "Input/output error")
        real_sync(fd)

    monkeypatch.setattr(segments, "datasync", sync_fails_once)
    spool = await open_spool(tmp_path)
    await spool.append(record(0))
    with pytest.raises(SpoolError, match="Input/output error"):
        await spool.append(record(1))
    await spool.append(record(2))
    assert len(spool.segments()) == 2  # the failed segment is left behind, not appended to
    sink = DictSink()
    drainer = await start_drainer(spool, sink)
    await idle(drainer)
    # The failed record may or may not be delivered (at least once); the others are.
    assert {"r00000", "r00002"} <= set(sink.stored)
    await drainer.close()
    await spool.close()


async def test_a_drainer_needs_an_open_spool(tmp_path: Path) -> None:
    with pytest.raises(SpoolError, match="open spool"):
        await SpoolDrainer(Spool(tmp_path), DictSink()).start()


async def test_close_gives_up_on_a_hung_sink_after_its_deadline(tmp_path: Path) -> None:
    spool = await open_spool(tmp_path)
    hung = asyncio.Event()

    async def hanging_sink(records: list[dict[str, Any]]) -> None:
        hung.set()
        await asyncio.Event().wait()

    drainer = SpoolDrainer(spool, hanging_sink, close_deadline=0.05)
    await drainer.start()
    await spool.append(record(0))
    await hung.wait()
    await drainer.close()
    assert not drainer.healthy
    assert drainer.backlog == 1
    await spool.close()


CHILD = """
import asyncio, sys
from pathlib import Path
from gatehouse.store.spool import Spool

async def main():
    spool = Spool(Path(sys.argv[1]))
    await spool.open()

    async def writer(w):
        n = 0
        while True:
            rid = f"{w}-{n}"
            await spool.append({"kind": "test", "id": rid, "pad": "x" * 200})
            sys.stdout.write(rid + "\\n")
            sys.stdout.flush()
            n += 1

    await asyncio.gather(*(writer(w) for w in range(16)))

asyncio.run(main())
"""


async def test_every_acknowledged_record_survives_kill_9(tmp_path: Path) -> None:
    source = str(Path(gatehouse.__file__).parents[1])
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(tmp_path / "spool"),
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": source},
    )
    assert child.stdout is not None
    acknowledged: list[str] = []
    async with asyncio.timeout(30):
        while len(acknowledged) < 3000:
            line = await child.stdout.readline()
            assert line, "the child process died early"
            acknowledged.append(line.decode().strip())
        child.kill()
        rest = await child.stdout.read()
        assert await child.wait() == -9
    acknowledged += rest.decode().split()

    spool = await open_spool(tmp_path / "spool")
    sink = DictSink()
    drainer = await start_drainer(spool, sink)
    await idle(drainer)
    assert set(acknowledged) <= set(sink.stored)
    assert len(sink.sent) == len(set(sink.sent))
    await drainer.close()
    await spool.close()
