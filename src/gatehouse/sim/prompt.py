"""Walk a Messages request the way the prompt cache sees it.

The cacheable prompt is the sequence tools -> system -> messages, one item per
tool definition or content block. ``analyze`` counts tokens per item and, up to
the last ``cache_control`` breakpoint, chains a fingerprint of the model and of
each item without its ``cache_control``, so a prefix has the same key whichever
block carried the breakpoint last time.

Fingerprints are Python's 64-bit ``hash`` (about twice the speed of sha256, and
no re-serialisation of top-level strings): the cache lives in one process, where
``hash`` is stable, and a 64-bit collision among 100k entries is not a concern
for a simulator, while this walk runs on every benchmark request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from gatehouse.sim.tokens import MESSAGE_OVERHEAD, block_tokens, tool_tokens

# Like the real API, a breakpoint also finds a cached prefix ending at any of the
# 20 block boundaries before it. This is what lets turn N+1 read what turn N wrote
# when Claude Code moves its last breakpoint to the newest message.
LOOKBACK_BLOCKS = 20
TTL_5M = 300.0
TTL_1H = 3600.0

_TOOL = "tool"
_SYSTEM = "system"
_BLOCK = "block"

Item = tuple[str, Any, int]


@dataclass(frozen=True, slots=True)
class Breakpoint:
    """A prefix the request asks to cache: its key, its tokens and its TTL."""

    key: int
    tokens: int
    ttl: float


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the prompt cache needs to know about one request."""

    total_tokens: int
    breakpoints: tuple[Breakpoint, ...] = ()
    # (key, prefix tokens) of every boundary a cached prefix may be read at, longest first.
    read_points: tuple[tuple[int, int], ...] = ()


def count_tokens(body: dict[str, Any]) -> int:
    """Total input tokens of a request body (tools, system and messages)."""
    return sum(item[2] for item in _items(body))


def analyze(body: dict[str, Any], model: str) -> Prompt:
    """Count the request's tokens and key its cache breakpoints."""
    items = list(_items(body))
    total = sum(item[2] for item in items)
    marks = [
        i for i, item in enumerate(items) if type(item[1]) is dict and "cache_control" in item[1]
    ]
    if not marks:
        return Prompt(total)
    readable: set[int] = set()
    for mark in marks:
        readable.update(range(max(0, mark - LOOKBACK_BLOCKS + 1), mark + 1))
    is_mark = set(marks)
    key = hash(("gatehouse-sim", model))
    prefix = 0
    breakpoints: list[Breakpoint] = []
    reads: list[tuple[int, int]] = []
    for i in range(marks[-1] + 1):
        tag, obj, tokens = items[i]
        key = hash((key, tag, _fingerprint(obj)))
        prefix += tokens
        if i in readable:
            reads.append((key, prefix))
            if i in is_mark:
                breakpoints.append(Breakpoint(key, prefix, _ttl(obj["cache_control"])))
    reads.reverse()
    return Prompt(total, tuple(breakpoints), tuple(reads))


def _ttl(cache_control: Any) -> float:
    if isinstance(cache_control, dict) and cache_control.get("ttl") == "1h":
        return TTL_1H
    return TTL_5M


_SCALARS = (str, int, float, bool, type(None))


def _fingerprint(obj: Any) -> int:
    """A block's identity without its cache_control: strings hashed, nested values as JSON."""
    if type(obj) is not dict:
        return hash(obj) if type(obj) in _SCALARS else hash(orjson.dumps(obj))
    return hash(
        tuple(
            (k, v if type(v) in _SCALARS else orjson.dumps(v))
            for k, v in obj.items()
            if k != "cache_control"
        )
    )


def _items(body: dict[str, Any]) -> Iterator[Item]:
    tools = body.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            yield _TOOL, tool, tool_tokens(tool)
    system = body.get("system")
    if isinstance(system, str):
        if system:
            yield _SYSTEM, system, block_tokens(system)
    elif isinstance(system, list):
        for block in system:
            yield _SYSTEM, block, block_tokens(block)
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        start = f"message:{role}"
        content = message.get("content")
        if isinstance(content, list) and content:
            first, *rest = content
            yield start, first, MESSAGE_OVERHEAD + block_tokens(first)
            for block in rest:
                yield _BLOCK, block, block_tokens(block)
        else:
            text = content if isinstance(content, str) else ""
            yield start, text, MESSAGE_OVERHEAD + block_tokens(text)
