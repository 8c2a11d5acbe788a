"""The bytes of a response: SSE events for ``stream: true``, a Message otherwise.

Events are assembled from pre-encoded fragments (orjson only for the variable
parts) because the simulator sits on the benchmark's hot path; the text events of
a given block are memoised, so a benchmark's repeated default reply is built once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import orjson

from gatehouse.sim.cache import CacheUsage
from gatehouse.sim.reply import Turn

PING = b'event: ping\ndata: {"type":"ping"}\n\n'
OVERLOADED_EVENT = (
    b"event: error\n"
    b'data: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
)
MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_DELTA = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_MEMO_TEXT_CHARS = 65_536
_START = b'event: content_block_start\ndata: {"type":"content_block_start","index":'


@dataclass(frozen=True, slots=True)
class SseBody:
    """A streamed response in three parts, so faults can cut or pause between them."""

    start: bytes  # message_start
    blocks: list[bytes]  # content block events, ping after the first content_block_start
    end: bytes  # message_delta + message_stop


def usage(cache: CacheUsage, output_tokens: int) -> dict[str, Any]:
    """The ``usage`` object of a response."""
    return {
        "input_tokens": cache.input_tokens,
        "cache_creation_input_tokens": cache.cache_creation_input_tokens,
        "cache_read_input_tokens": cache.cache_read_input_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": cache.ephemeral_5m_input_tokens,
            "ephemeral_1h_input_tokens": cache.ephemeral_1h_input_tokens,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def message_json(message_id: str, model: str, cache: CacheUsage, turn: Turn) -> bytes:
    """The non-streaming response body: one Message object."""
    return orjson.dumps(
        {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": turn.content,
            "stop_reason": turn.stop_reason,
            "stop_sequence": None,
            "usage": usage(cache, turn.output_tokens),
        }
    )


def sse_body(message_id: str, model: str, cache: CacheUsage, turn: Turn) -> SseBody:
    """The streaming response, event by event, in the API's order."""
    start = {
        "type": "message_start",
        "message": {
            "id": message_id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": usage(cache, 1),
        },
    }
    blocks: list[bytes] = []
    for index, block in enumerate(turn.content):
        kind = block["type"]
        if kind == "text":
            text = block["text"]
            if len(text) <= _MEMO_TEXT_CHARS:
                blocks.extend(_memo_text_events(index, text))
            else:
                blocks.extend(_text_events(index, text))
        elif kind == "tool_use":
            blocks.extend(_tool_use_events(index, block))
        else:
            blocks.extend(_thinking_events(index, block["thinking"], block["signature"]))
    if blocks:
        blocks.insert(1, PING)
    delta = {
        "type": "message_delta",
        "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
        "usage": usage(cache, turn.output_tokens),
    }
    return SseBody(
        start=_event(b"message_start", orjson.dumps(start)),
        blocks=blocks,
        end=_event(b"message_delta", orjson.dumps(delta)) + MESSAGE_STOP,
    )


def _event(name: bytes, data: bytes) -> bytes:
    return b"event: " + name + b"\ndata: " + data + b"\n\n"


def _chunks(text: str) -> list[str]:
    """A few pieces, like the API's deltas: about a third each, 16 to 64 characters."""
    size = max(16, min(64, -(-len(text) // 3)))
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _stop(index: bytes) -> bytes:
    return (
        b'event: content_block_stop\ndata: {"type":"content_block_stop","index":' + index + b"}\n\n"
    )


def _text_events(index: int, text: str) -> tuple[bytes, ...]:
    i = str(index).encode()
    events = [_START + i + b',"content_block":{"type":"text","text":""}}\n\n']
    for chunk in _chunks(text):
        events.append(
            _DELTA + i + b',"delta":{"type":"text_delta","text":' + orjson.dumps(chunk) + b"}}\n\n"
        )
    events.append(_stop(i))
    return tuple(events)


_memo_text_events = functools.lru_cache(maxsize=128)(_text_events)


def _tool_use_events(index: int, block: dict[str, Any]) -> list[bytes]:
    i = str(index).encode()
    head = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
    events = [_START + i + b',"content_block":' + orjson.dumps(head) + b"}\n\n"]
    for chunk in _chunks(orjson.dumps(block["input"]).decode()):
        events.append(
            _DELTA
            + i
            + b',"delta":{"type":"input_json_delta","partial_json":'
            + orjson.dumps(chunk)
            + b"}}\n\n"
        )
    events.append(_stop(i))
    return events


@functools.lru_cache(maxsize=64)
def _thinking_events(index: int, thinking: str, signature: str) -> tuple[bytes, ...]:
    i = str(index).encode()
    events = [
        _START + i + b',"content_block":{"type":"thinking","thinking":"","signature":""}}\n\n'
    ]
    if thinking:
        for chunk in _chunks(thinking):
            events.append(
                _DELTA
                + i
                + b',"delta":{"type":"thinking_delta","thinking":'
                + orjson.dumps(chunk)
                + b"}}\n\n"
            )
    events.append(
        _DELTA
        + i
        + b',"delta":{"type":"signature_delta","signature":'
        + orjson.dumps(signature)
        + b"}}\n\n"
    )
    events.append(_stop(i))
    return tuple(events)
