"""Deterministic token counting.

The simulator has no tokenizer: a text costs one token per four UTF-8 bytes
(rounded up), structured values cost the same over their compact JSON, and each
block, message and tool definition carries a small fixed overhead. The same body
always gives the same count, which is all chargeback and cache tests need.
"""

from __future__ import annotations

from typing import Any

import orjson

BLOCK_OVERHEAD = 2
MESSAGE_OVERHEAD = 3
TOOL_OVERHEAD = 5
IMAGE_TOKENS = 1600
DOCUMENT_TOKENS = 2000


def text_tokens(text: str) -> int:
    """Tokens of a text: ceil(utf-8 bytes / 4)."""
    size = len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))
    return (size + 3) // 4


def json_tokens(value: Any) -> int:
    """Tokens of a structured value: ceil(compact JSON bytes / 4)."""
    return (len(orjson.dumps(value)) + 3) // 4


def without_cache_control(obj: dict[str, Any]) -> dict[str, Any]:
    """A copy of a block or tool without its ``cache_control`` marker."""
    return {k: v for k, v in obj.items() if k != "cache_control"}


def tool_tokens(tool: Any) -> int:
    """Tokens of one tool definition (its JSON, without cache_control)."""
    if not isinstance(tool, dict):
        return TOOL_OVERHEAD + json_tokens(tool)
    if tool.get("defer_loading") is True:
        # A deferred tool is not loaded into the context until searched for.
        return TOOL_OVERHEAD
    if "cache_control" in tool:
        tool = without_cache_control(tool)
    return TOOL_OVERHEAD + json_tokens(tool)


def block_tokens(block: Any) -> int:
    """Tokens of one system or message content block (or a string content)."""
    if isinstance(block, str):
        return BLOCK_OVERHEAD + text_tokens(block)
    if not isinstance(block, dict):
        return BLOCK_OVERHEAD + json_tokens(block)
    kind = block.get("type")
    if kind == "text":
        text = block.get("text")
        return BLOCK_OVERHEAD + (text_tokens(text) if isinstance(text, str) else 0)
    if kind in ("tool_use", "server_tool_use"):
        name = block.get("name")
        name_tokens = text_tokens(name) if isinstance(name, str) else 0
        return BLOCK_OVERHEAD + name_tokens + json_tokens(block.get("input", {}))
    if kind == "tool_result":
        return BLOCK_OVERHEAD + _content_tokens(block.get("content"))
    if kind == "image":
        return BLOCK_OVERHEAD + IMAGE_TOKENS
    if kind == "document":
        source = block.get("source")
        data = source.get("data") if isinstance(source, dict) else None
        if isinstance(data, str) and isinstance(source, dict) and source.get("type") == "text":
            return BLOCK_OVERHEAD + text_tokens(data)
        return BLOCK_OVERHEAD + DOCUMENT_TOKENS
    if kind == "thinking":
        thinking = block.get("thinking")
        return BLOCK_OVERHEAD + (text_tokens(thinking) if isinstance(thinking, str) else 0)
    if kind == "redacted_thinking":
        data = block.get("data")
        return BLOCK_OVERHEAD + (text_tokens(data) if isinstance(data, str) else 0)
    if "cache_control" in block:
        block = without_cache_control(block)
    return BLOCK_OVERHEAD + json_tokens(block)


def _content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return text_tokens(content)
    if isinstance(content, list):
        return sum(block_tokens(block) for block in content)
    return json_tokens(content)
