"""What the simulator answers: reply values, the default reply, and rendering.

A ``Reply`` is the script (from a scenario file or the default); ``render`` turns
it into the content blocks of one response, in the API's shape, with the
``{tool_result}`` / ``{marker}`` placeholders filled, a thinking block first when
the request enabled thinking, and ``max_tokens`` honoured for text.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any

from gatehouse.sim.tokens import json_tokens, text_tokens

MAX_OUTPUT_TOKENS = 200_000
THINKING_TEXT = "The user is talking to the gatehouse simulator; answer with the scripted reply."
_FILLER = " The quick brown fox jumps over the lazy dog while the gateway keeps the ledger."


@dataclass(frozen=True, slots=True)
class TextBlock:
    text: str


@dataclass(frozen=True, slots=True)
class ToolUseBlock:
    name: str
    input: dict[str, Any] = field(default_factory=dict)


ReplyBlock = TextBlock | ToolUseBlock


@dataclass(frozen=True, slots=True)
class Reply:
    """One scripted assistant turn. ``stop_reason`` None means "infer it"."""

    content: tuple[ReplyBlock, ...]
    stop_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """A rendered response: API-shaped content blocks, stop reason, output tokens."""

    content: list[dict[str, Any]]
    stop_reason: str
    output_tokens: int


@functools.lru_cache(maxsize=32)
def default_reply(model: str, output_tokens: int | None = None) -> Reply:
    """The reply used when no scenario matches; about ``output_tokens`` long if given."""
    text = f"Hello from gatehouse sim. You are talking to {model}."
    if output_tokens is not None:
        size = 4 * max(1, min(output_tokens, MAX_OUTPUT_TOKENS))
        if size > len(text):
            repeats = (size - len(text)) // len(_FILLER) + 1
            text += _FILLER * repeats
        text = text[:size]
    return Reply((TextBlock(text),), "end_turn")


@functools.lru_cache(maxsize=64)
def _signature(thinking: str) -> str:
    return base64.b64encode(b"gatehouse-sim:" + hashlib.sha256(thinking.encode()).digest()).decode()


def render(
    reply: Reply,
    *,
    max_tokens: int,
    thinking: bool = False,
    thinking_display_omitted: bool = False,
    marker: str | None = None,
    tool_result: str = "",
) -> Turn:
    """Render ``reply`` as the content of one response.

    With a ``marker`` (a scenario reply), ``{marker}`` and ``{tool_result}`` are
    filled in every text and in every string of a tool_use input.
    """
    content: list[dict[str, Any]] = []
    used = 0
    if thinking:
        shown = "" if thinking_display_omitted else THINKING_TEXT
        content.append({"type": "thinking", "thinking": shown, "signature": _signature(shown)})
        used += text_tokens(THINKING_TEXT)  # billed even when not displayed
    stop_reason = reply.stop_reason
    has_tool_use = any(isinstance(block, ToolUseBlock) for block in reply.content)
    for block in reply.content:
        if isinstance(block, TextBlock):
            text = block.text if marker is None else _fill(block.text, marker, tool_result)
            tokens = text_tokens(text)
            if not has_tool_use and used + tokens > max_tokens:
                text = _truncate(text, max(0, max_tokens - used))
                content.append({"type": "text", "text": text})
                return Turn(content, "max_tokens", max(1, used + text_tokens(text)))
            content.append({"type": "text", "text": text})
            used += tokens
        else:
            tool_input = block.input
            if marker is not None:
                tool_input = _fill_value(tool_input, marker, tool_result)
            content.append(
                {
                    "type": "tool_use",
                    "id": "toolu_sim_" + os.urandom(12).hex(),
                    "name": block.name,
                    "input": tool_input,
                }
            )
            used += text_tokens(block.name) + json_tokens(tool_input)
    if stop_reason is None:
        stop_reason = "tool_use" if has_tool_use else "end_turn"
    return Turn(content, stop_reason, max(1, used))


def _truncate(text: str, tokens: int) -> str:
    if text.isascii():
        return text[: tokens * 4]
    return text.encode()[: tokens * 4].decode("utf-8", "ignore")


def _fill(text: str, marker: str, tool_result: str) -> str:
    return text.replace("{tool_result}", tool_result).replace("{marker}", marker)


def _fill_value(value: Any, marker: str, tool_result: str) -> Any:
    if isinstance(value, str):
        return _fill(value, marker, tool_result)
    if isinstance(value, dict):
        return {k: _fill_value(v, marker, tool_result) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill_value(v, marker, tool_result) for v in value]
    return value
