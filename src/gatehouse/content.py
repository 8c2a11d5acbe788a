"""The content blocks of a Messages request and their addresses.

Pure.  Claude Code resends the whole conversation every turn, so both the
guardrails (screen only what is new) and the audit store (store each block
once) work on *blocks*: each system block, each tool definition and each
content block of each message.  A block's address is the SHA-256 of its
canonical bytes — the block as JSON with sorted keys and without
``cache_control``, which Claude Code moves from block to block between turns
and which says nothing about the content.

`blocks` walks a parsed request in order; `block_texts` yields the pieces
of text inside one block that a scanner reads (a tool_use's input is read as
its JSON, every string inside a tool_result is read).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

_VOLATILE = "cache_control"


@dataclass(frozen=True, slots=True)
class Block:
    """One addressable block of a request."""

    path: str  # where it sits: "system[0]", "tools[3]", "messages[4].content[1]"
    role: str  # "system", "tools", or the message's role ("user", "assistant")
    kind: str  # the block's ``type`` ("text", "tool_use", "tool_result", …); "tool" for tools
    value: Any  # the block as parsed (a string message content becomes a text block)
    raw: bytes  # canonical bytes: sorted keys, no cache_control
    digest: str  # sha256 of ``raw``, hex


def canonical(value: Any) -> bytes:
    """The bytes a block is addressed by (see the module docstring)."""
    if isinstance(value, dict) and _VOLATILE in value:
        value = {k: v for k, v in value.items() if k != _VOLATILE}
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def address(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def make_block(path: str, role: str, value: Any) -> Block:
    if isinstance(value, str):
        value = {"type": "text", "text": value}
    kind = value.get("type") if isinstance(value, dict) else None
    raw = canonical(value)
    return Block(path, role, kind if isinstance(kind, str) else "", value, raw, address(raw))


def blocks(parsed: Mapping[str, Any]) -> list[Block]:
    """Every block of a Messages request, in the order the model reads them."""
    out: list[Block] = []
    system = parsed.get("system")
    if isinstance(system, str):
        out.append(make_block("system", "system", system))
    elif isinstance(system, list):
        out.extend(make_block(f"system[{i}]", "system", b) for i, b in enumerate(system))
    tools = parsed.get("tools")
    if isinstance(tools, list):
        for i, tool in enumerate(tools):
            raw = canonical(tool)
            out.append(Block(f"tools[{i}]", "tools", "tool", tool, raw, address(raw)))
    messages = parsed.get("messages")
    if isinstance(messages, list):
        for mi, message in enumerate(messages):
            if not isinstance(message, dict):
                continue
            role = message.get("role")
            role = role if isinstance(role, str) else ""
            content = message.get("content")
            if isinstance(content, str):
                out.append(make_block(f"messages[{mi}].content", role, content))
            elif isinstance(content, list):
                out.extend(
                    make_block(f"messages[{mi}].content[{bi}]", role, b)
                    for bi, b in enumerate(content)
                )
    return out


def block_texts(block: Block) -> Iterator[tuple[str, str]]:
    """(sub-path, text) for each piece of text a scanner should read in ``block``."""
    value = block.value
    if not isinstance(value, dict):
        return
    kind = block.kind
    if kind == "text" and isinstance(value.get("text"), str):
        yield "text", value["text"]
    elif kind == "tool_use":
        tool_input = value.get("input")
        if tool_input is not None:
            yield "input", orjson.dumps(tool_input).decode()
    elif kind == "tool_result":
        content = value.get("content")
        if isinstance(content, str):
            yield "content", content
        elif isinstance(content, list):
            for i, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield f"content[{i}].text", part["text"]
    elif kind == "tool":
        description = value.get("description")
        if isinstance(description, str):
            yield "description", description
    elif kind == "thinking" and isinstance(value.get("thinking"), str):
        yield "thinking", value["thinking"]
    elif kind == "document":
        source = value.get("source")
        source = source if isinstance(source, dict) else {}
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            yield "source.data", source["data"]
