"""Prompt cache simulation: which input tokens were read, written or uncached.

Honest to the real API's rules: a prefix is cached only when a request marks a
breakpoint there and the prefix reaches the minimum cacheable size; a read finds
the longest unexpired prefix and refreshes its TTL; tokens between the read point
and the last breakpoint are written (split 5m / 1h by the TTL of the breakpoint
that wrote them); the rest is plain input. The three always sum to the total.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from gatehouse.sim.prompt import TTL_1H, Prompt

DEFAULT_MIN_CACHEABLE_TOKENS = 1024
DEFAULT_MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """The input side of a response's ``usage``."""

    input_tokens: int
    cache_read_input_tokens: int = 0
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0

    @property
    def cache_creation_input_tokens(self) -> int:
        return self.ephemeral_5m_input_tokens + self.ephemeral_1h_input_tokens


class PromptCache:
    """An in-memory, LRU-bounded map of cached prefix keys to their expiry."""

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        min_tokens: int = DEFAULT_MIN_CACHEABLE_TOKENS,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._clock = clock
        self._min_tokens = min_tokens
        self._max_entries = max_entries
        self._entries: OrderedDict[int, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def account(self, prompt: Prompt) -> CacheUsage:
        """Split the prompt's input tokens, and record its breakpoints as cached."""
        if not prompt.breakpoints:
            return CacheUsage(prompt.total_tokens)
        now = self._clock()
        entries = self._entries
        read = 0
        for key, tokens in prompt.read_points:
            if tokens < self._min_tokens:
                break
            entry = entries.get(key)
            if entry is None:
                continue
            expiry, ttl = entry
            if expiry <= now:
                del entries[key]
                continue
            entries[key] = (now + ttl, ttl)
            entries.move_to_end(key)
            read = tokens
            break
        written_5m = written_1h = 0
        covered = read
        for breakpoint in prompt.breakpoints:
            if breakpoint.tokens < self._min_tokens:
                continue
            if breakpoint.tokens > covered:
                if breakpoint.ttl >= TTL_1H:
                    written_1h += breakpoint.tokens - covered
                else:
                    written_5m += breakpoint.tokens - covered
                covered = breakpoint.tokens
            self._store(breakpoint.key, now, breakpoint.ttl)
        return CacheUsage(
            input_tokens=prompt.total_tokens - covered,
            cache_read_input_tokens=read,
            ephemeral_5m_input_tokens=written_5m,
            ephemeral_1h_input_tokens=written_1h,
        )

    def _store(self, key: int, now: float, ttl: float) -> None:
        entries = self._entries
        old = entries.get(key)
        if old is not None and old[0] > now:
            ttl = max(ttl, old[1])
        entries[key] = (now + ttl, ttl)
        entries.move_to_end(key)
        if len(entries) > self._max_entries:
            entries.popitem(last=False)
