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
import re
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
    # Copied: orjson's bytes keep their whole write buffer (16 KB for a 1.5 KB block),
    # and these live as long as the request (and in the audit trail's caches).
    return bytes(memoryview(orjson.dumps(value, option=orjson.OPT_SORT_KEYS)))


def address(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def make_block(path: str, role: str, value: Any) -> Block:
    if isinstance(value, str):
        value = {"type": "text", "text": value}
    kind = value.get("type") if isinstance(value, dict) else None
    raw = canonical(value)
    return Block(path, role, kind if isinstance(kind, str) else "", value, raw, address(raw))


def replaced(block: Block, value: Any) -> Block:
    """``block`` with a new value (a redacted copy), addressed anew."""
    raw = canonical(value)
    return Block(block.path, block.role, block.kind, value, raw, address(raw))


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


Where = tuple[str | int, ...]  # a text's place inside its block: keys and list indexes


def where_label(where: Where) -> str:
    """``("input", "edits", 0, "new_string")`` → ``input.edits[0].new_string``."""
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def block_texts(block: Block) -> Iterator[tuple[Where, str]]:
    """(place, text) for each piece of text a scanner should read in ``block``.

    A tool_use's input is read string by string (so a rewrite keeps it valid JSON);
    every text part of a tool_result is read; images are not text.
    """
    value = block.value
    if not isinstance(value, dict):
        return
    kind = block.kind
    if kind == "text" and isinstance(value.get("text"), str):
        yield ("text",), value["text"]
    elif kind == "tool_use":
        yield from _strings(value.get("input"), ("input",))
    elif kind == "tool_result":
        content = value.get("content")
        if isinstance(content, str):
            yield ("content",), content
        elif isinstance(content, list):
            for i, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    yield ("content", i, "text"), part["text"]
    elif kind == "tool":
        if isinstance(value.get("description"), str):
            yield ("description",), value["description"]
    elif kind == "thinking" and isinstance(value.get("thinking"), str):
        yield ("thinking",), value["thinking"]
    elif kind == "document":
        source = value.get("source")
        source = source if isinstance(source, dict) else {}
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            yield ("source", "data"), source["data"]


def _strings(value: Any, where: Where) -> Iterator[tuple[Where, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, (*where, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _strings(item, (*where, i))


def replace_texts(value: Any, texts: Mapping[Where, str]) -> Any:
    """``value`` with the text at each place replaced; containers on the way are copied."""
    for where, text in texts.items():
        value = _replace(value, where, text)
    return value


def _replace(value: Any, where: Where, text: str) -> Any:
    if not where:
        return text
    head, rest = where[0], where[1:]
    if isinstance(value, dict) and isinstance(head, str):
        return {**value, head: _replace(value[head], rest, text)}
    if isinstance(value, list) and isinstance(head, int):
        return [*value[:head], _replace(value[head], rest, text), *value[head + 1 :]]
    raise KeyError(where_label(where))


_STEP = re.compile(r"([a-z_]+)|\[(\d+)\]")


def rewrite_body(
    body: bytes, parsed: Mapping[str, Any], blocks: list[Block], rewrites: Mapping[int, Any]
) -> bytes:
    """``body`` with ``blocks[i]`` replaced by ``rewrites[i]``, every other byte kept.

    Each rewritten block is found by its serialisation in the original bytes and
    spliced, so the rest of the body is byte-for-byte what the client sent (the
    prompt cache keys on bytes).  Identical blocks are rewritten identically.  If a
    block's bytes cannot be found (the client serialised differently), the whole
    body is serialised again from ``parsed``.
    """
    out = body
    for index, new in rewrites.items():
        old = _lookup(parsed, blocks[index].path)
        if isinstance(old, str) and isinstance(new, dict):
            new = new.get("text", "")  # a plain-string content stays a string
        old_bytes, new_bytes = orjson.dumps(old), orjson.dumps(new)
        if old_bytes not in out:
            return _reserialise(parsed, blocks, rewrites)
        out = out.replace(old_bytes, new_bytes)
    return out


def _steps(path: str) -> list[str | int]:
    return [int(index) if index else key for key, index in _STEP.findall(path)]


def _lookup(parsed: Any, path: str) -> Any:
    value = parsed
    for step in _steps(path):
        value = value[step]
    return value


def _reserialise(
    parsed: Mapping[str, Any], blocks: list[Block], rewrites: Mapping[int, Any]
) -> bytes:
    document: Any = dict(parsed)
    for index, new in rewrites.items():
        steps = _steps(blocks[index].path)
        if isinstance(_lookup(parsed, blocks[index].path), str) and isinstance(new, dict):
            new = new.get("text", "")
        document = _replace(document, tuple(steps), new)
    return orjson.dumps(document)
