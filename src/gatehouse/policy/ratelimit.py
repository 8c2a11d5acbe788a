"""Per-developer request rate limits, in one process or shared through Redis.

A fixed window per developer: simple, cheap, and the reset time it reports is
exact.  With Redis configured, every replica counts in the same key, so a
developer cannot multiply their limit by the number of replicas.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Protocol

from gatehouse.errors import InvalidRequest, RateLimited

_LIMIT = re.compile(r"^\s*(\d+)\s*/\s*(s|sec|second|m|min|minute|h|hour)\s*$")
_WINDOWS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
}


@dataclass(frozen=True, slots=True)
class RateLimit:
    requests: int
    window: int  # seconds

    @classmethod
    def parse(cls, text: str) -> RateLimit | None:
        """``"600/min"`` → 600 requests a minute; empty → no limit."""
        if not text.strip():
            return None
        match = _LIMIT.match(text.lower())
        if not match or int(match.group(1)) < 1:
            raise InvalidRequest(
                f"cannot read rate limit {text!r}: use requests/unit, such as 600/min or 20/s"
            )
        return cls(int(match.group(1)), _WINDOWS[match.group(2)])

    def describe(self) -> str:
        unit = {1: "second", 60: "minute", 3600: "hour"}[self.window]
        noun = "request" if self.requests == 1 else "requests"
        return f"{self.requests} {noun} per {unit}"


class Counter(Protocol):
    async def hit(self, key: str, window: int, now: float) -> int:
        """Count one request in ``key``'s current window; return the window's count."""


class MemoryCounter:
    """Counts in this process only."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}

    async def hit(self, key: str, window: int, now: float) -> int:
        slot = int(now // window)
        current, count = self._windows.get(key, (slot, 0))
        count = count + 1 if current == slot else 1
        self._windows[key] = (slot, count)
        if len(self._windows) > 100_000:
            self._windows = {k: v for k, v in self._windows.items() if v[0] == slot}
        return count


class RateLimiter:
    def __init__(self, limit: RateLimit, counter: Counter) -> None:
        self.limit = limit
        self._counter = counter

    async def check(self, developer: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        window = self.limit.window
        count = await self._counter.hit(f"{developer}:{int(now // window)}", window, now)
        if count <= self.limit.requests:
            return
        retry_after = max(1, int(window - now % window))
        raise RateLimited(
            f"Rate limit reached: {developer} may send {self.limit.describe()} through "
            f"Gatehouse. Try again in {retry_after} s, or ask your platform team to raise "
            "GATEHOUSE_RATE_LIMIT.",
            headers={"retry-after": str(retry_after)},
        )
