"""The spool's files on disk: segments of checksummed lines, and the checkpoint.

A spool directory holds::

    lock                 flock'd by the one process using the spool (holds its pid)
    00000001.log ...     segments, append-only, one record a line
    checkpoint           "<segment> <offset>": everything before it was delivered

Each line is ``<crc32 of json, 8 hex digits> <json>\\n``.  A line whose
checksum does not match, or a last line without its newline (torn by a crash
mid-write), is skipped when read; neither can belong to an acknowledged
append, since appends are acknowledged only after the fsync that covers them.

Everything here is blocking file I/O, for a worker thread; none of it holds
a reference to the :class:`~gatehouse.store.spool.Spool`, so a Spool dropped
without ``close`` (a simulated crash) is collected at once.
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from gatehouse.store.errors import SpoolError, SpoolLocked

log = logging.getLogger("gatehouse.store.spool")

SEGMENT_SUFFIX = ".log"
LOCK_NAME = "lock"
CHECKPOINT_NAME = "checkpoint"
BLOCK = 1 << 20

datasync: Callable[[int], None] = getattr(os, "fdatasync", os.fsync)


@dataclass(frozen=True, order=True, slots=True)
class Position:
    """A place in the spool: byte ``offset`` within segment number ``segment``."""

    segment: int
    offset: int


@dataclass(slots=True)
class Chunk:
    """Records read from the spool, and where the next read starts."""

    records: list[dict[str, Any]]
    end: Position
    skipped: int = 0
    """Lines skipped as corrupt (a bad checksum, or not a JSON object)."""


def encode(record: dict[str, Any]) -> bytes:
    payload = orjson.dumps(record)
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def decode(line: bytes) -> dict[str, Any] | None:
    """The record of one newline-terminated line, or ``None`` if it is corrupt."""
    if len(line) < 11 or line[8:9] != b" ":
        return None
    payload = line[9:-1]
    try:
        if int(line[:8], 16) != zlib.crc32(payload):
            return None
        record = orjson.loads(payload)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def segment_path(directory: Path, segment: int) -> Path:
    return directory / f"{segment:08d}{SEGMENT_SUFFIX}"


def list_segments(directory: Path) -> list[int]:
    """Numbers of the segment files in ``directory``, in order."""
    stems = (p.name[: -len(SEGMENT_SUFFIX)] for p in directory.glob("*" + SEGMENT_SUFFIX))
    return sorted(int(stem) for stem in stems if stem.isdigit())


class SegmentWriter:
    """Holds the spool directory locked and appends to this process's newest segment."""

    def __init__(self, directory: Path, segment_bytes: int) -> None:
        self.directory = directory
        self.segment_bytes = segment_bytes
        self.first_segment = 0
        self.lock_fd: int | None = None
        self.fd: int | None = None
        self.segment = 0
        self.size = 0

    def open(self) -> None:
        """Create and lock the directory; :class:`SpoolLocked` if another process has it."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            lock = self.directory / LOCK_NAME
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise SpoolError(f"cannot open spool directory {self.directory}: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise SpoolLocked(
                f"spool directory {self.directory} is in use by another process (pid {holder}); "
                "every Gatehouse process needs a spool directory of its own"
            ) from exc
        self.lock_fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, b"%d\n" % os.getpid(), 0)
        # Fresh segments only: never append after a tail a crash may have torn.
        self.first_segment = max(list_segments(self.directory), default=0) + 1
        self.segment = self.first_segment - 1

    def write(self, data: bytes) -> tuple[int, int]:
        """Append ``data`` and fsync; the segment and its durable size afterwards."""
        if self.fd is None or self.size >= self.segment_bytes:
            self._roll()
        fd = self.fd
        assert fd is not None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            datasync(fd)
        except OSError:
            # After a failed write or fsync the file's state is unknown: go on
            # in a fresh segment; readers skip whatever torn tail was left.
            self.fd = None
            os.close(fd)
            raise
        self.size += len(data)
        return self.segment, self.size

    def _roll(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.segment += 1
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        self.fd = os.open(segment_path(self.directory, self.segment), flags, 0o600)
        self.size = 0
        sync_directory(self.directory)

    def close(self) -> None:
        """Release the segment and the lock (safe to call twice)."""
        for fd in (self.fd, self.lock_fd):
            if fd is not None:
                os.close(fd)
        self.fd = self.lock_fd = None


def durable_end(segment: int, first_segment: int, durable: tuple[int, int] | None) -> int | None:
    """How far ``segment`` may be read: ``None`` means to its end (it is closed).

    ``durable`` is the writer's newest (segment, size) acknowledged to
    appenders; segments before ``first_segment`` were left by an earlier process.
    """
    if segment < first_segment:
        return None
    if durable is None or segment > durable[0]:
        return 0
    return None if segment < durable[0] else durable[1]


def read(
    directory: Path,
    first_segment: int,
    durable: tuple[int, int] | None,
    start: Position,
    limit: int,
    budget: int,
) -> Chunk:
    """Up to ``limit`` durable records (and about ``budget`` bytes) from ``start`` on."""
    chunk = Chunk([], start)
    segment, offset = start.segment, start.offset
    while True:
        end = durable_end(segment, first_segment, durable)
        if end != 0:
            path = segment_path(directory, segment)
            offset, budget = read_lines(path, offset, end, chunk, limit, budget)
        chunk.end = Position(segment, offset)
        if len(chunk.records) >= limit or budget <= 0 or end is not None:
            return chunk
        following = next((n for n in list_segments(directory) if n > segment), None)
        if following is None:
            return chunk
        segment, offset = following, 0


def count(
    directory: Path, first_segment: int, durable: tuple[int, int] | None, start: Position
) -> int:
    """Lines durable from ``start`` on (each a record, or a corrupt line to skip)."""
    total = 0
    for segment in list_segments(directory):
        if segment >= start.segment:
            offset = start.offset if segment == start.segment else 0
            end = durable_end(segment, first_segment, durable)
            total += count_lines(segment_path(directory, segment), offset, end)
    return total


def read_lines(
    path: Path, offset: int, end: int | None, chunk: Chunk, limit: int, budget: int
) -> tuple[int, int]:
    """Add the records of ``path`` from ``offset`` to ``chunk``.

    Reads up to byte ``end`` (to the end of the file when ``None``), until
    ``chunk`` holds ``limit`` records or ``budget`` bytes are spent.  Returns
    the offset after the last line consumed, and the budget left.
    """
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return offset, budget
    with f:
        f.seek(offset)
        while len(chunk.records) < limit and budget > 0 and (end is None or offset < end):
            line = f.readline()
            if not line:
                break
            if not line.endswith(b"\n"):
                # Only a closed segment (end is None) can end in a torn line.
                if end is None:
                    log.warning("%s: skipping a torn last line at byte %d", path, offset)
                    offset += len(line)
                break
            offset += len(line)
            budget -= len(line)
            record = decode(line)
            if record is None:
                log.warning("%s: skipping a corrupt line ending at byte %d", path, offset)
                chunk.skipped += 1
            else:
                chunk.records.append(record)
    return offset, budget


def count_lines(path: Path, offset: int, end: int | None) -> int:
    """Newline-terminated lines in ``path`` between ``offset`` and ``end`` (``None``: EOF)."""
    try:
        f = path.open("rb")
    except FileNotFoundError:
        return 0
    total = 0
    with f:
        f.seek(offset)
        left = None if end is None else max(0, end - offset)
        while left is None or left > 0:
            block = f.read(BLOCK if left is None else min(BLOCK, left))
            if not block:
                break
            total += block.count(b"\n")
            if left is not None:
                left -= len(block)
    return total


def read_checkpoint(directory: Path) -> Position:
    """Where delivery stopped last time (the start of the spool if never)."""
    path = directory / CHECKPOINT_NAME
    try:
        segment, offset = path.read_text().split()
        return Position(int(segment), int(offset))
    except FileNotFoundError:
        return Position(0, 0)
    except (OSError, ValueError) as exc:
        # Replaying from the start only delivers records again, which sinks tolerate.
        log.error("checkpoint %s is unreadable (%s); replaying the whole spool", path, exc)
        return Position(0, 0)


def write_checkpoint(directory: Path, position: Position) -> None:
    """Replace the checkpoint atomically: temp file, fsync, rename, fsync the directory."""
    path = directory / CHECKPOINT_NAME
    temp = path.with_suffix(".tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, b"%d %d\n" % (position.segment, position.offset))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    sync_directory(directory)


def delete_segments_before(directory: Path, segment: int) -> None:
    for number in list_segments(directory):
        if number >= segment:
            break
        segment_path(directory, number).unlink(missing_ok=True)


def sync_directory(directory: Path) -> None:
    """Make file creations and renames in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
