"""Scripted replies: the ``--scenario`` file and stateless reply selection.

A scenario file (YAML or JSON) is a list of entries, or a mapping with
``scenarios: [...]`` and an optional ``default_output_tokens: N``::

    - marker: RUN_TOOL
      replies:
        - content:
            - {type: tool_use, name: Bash, input: {command: echo hi}}
        - "The tool printed: {tool_result}"      # a bare string is one text block

Selection keeps no state, so a client's retry gets the same answer: the most
recent user message whose text contains an entry's marker picks the entry, and
the number of assistant messages after it picks the reply (the last one repeats).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import yaml

from gatehouse.sim.reply import Reply, ReplyBlock, TextBlock, ToolUseBlock

STOP_REASONS = frozenset(
    {"end_turn", "tool_use", "max_tokens", "stop_sequence", "pause_turn", "refusal"}
)


class ScenarioError(Exception):
    """A scenario file that cannot be read or does not have the expected shape."""


@dataclass(frozen=True, slots=True)
class ScenarioEntry:
    marker: str
    replies: tuple[Reply, ...]


@dataclass(frozen=True, slots=True)
class Scenario:
    entries: tuple[ScenarioEntry, ...] = ()
    default_output_tokens: int | None = None

    def select(self, messages: list[Any]) -> tuple[ScenarioEntry, Reply] | None:
        """The entry and reply for this conversation, or None when no marker matches."""
        if not self.entries:
            return None
        assistant_turns = 0
        for message in reversed(messages):
            if not isinstance(message, dict):
                continue
            role = message.get("role")
            if role == "assistant":
                assistant_turns += 1
            elif role == "user":
                for text in user_texts(message):
                    for entry in self.entries:
                        if entry.marker in text:
                            index = min(assistant_turns, len(entry.replies) - 1)
                            return entry, entry.replies[index]
        return None


def user_texts(message: dict[str, Any]) -> Iterator[str]:
    """The texts a user typed in a message: string content or text blocks."""
    content = message.get("content")
    if isinstance(content, str):
        yield content
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and block.get("type") == "text":
                text = block.get("text")
                if isinstance(text, str):
                    yield text


def last_tool_result_text(messages: list[Any]) -> str:
    """The text of the most recent tool_result block in the conversation ('' if none)."""
    for message in reversed(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in reversed(content):
            if isinstance(block, dict) and block.get("type") == "tool_result":
                result = block.get("content")
                if isinstance(result, str):
                    return result
                if isinstance(result, list):
                    return "\n".join(
                        b["text"]
                        for b in result
                        if isinstance(b, dict) and isinstance(b.get("text"), str)
                    )
                return ""
    return ""


def load_scenario(path: Path) -> Scenario:
    """Read a scenario file (``.json``, else YAML); raise ScenarioError if malformed."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {path}: {exc.strerror}") from exc
    try:
        data = orjson.loads(raw) if path.suffix == ".json" else yaml.safe_load(raw)
    except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ScenarioError(f"scenario file {path} is not valid {kind}: {exc}") from exc
    return parse_scenario(data, source=str(path))


def parse_scenario(data: Any, *, source: str = "scenario") -> Scenario:
    """Build a Scenario from already-decoded data; raise ScenarioError if malformed."""
    default_output_tokens = None
    if isinstance(data, dict):
        unknown = set(data) - {"scenarios", "default_output_tokens"}
        if unknown:
            raise ScenarioError(f"{source}: unknown top-level key(s) {sorted(unknown)}")
        default_output_tokens = data.get("default_output_tokens")
        if default_output_tokens is not None and (
            type(default_output_tokens) is not int or default_output_tokens < 1
        ):
            raise ScenarioError(f"{source}: default_output_tokens must be a positive integer")
        data = data.get("scenarios", [])
    if not isinstance(data, list):
        raise ScenarioError(
            f"{source}: expected a list of {{marker, replies}} entries "
            f"(or a mapping with 'scenarios'), got {type(data).__name__}"
        )
    entries = tuple(_entry(item, f"{source}: entry {i}") for i, item in enumerate(data))
    return Scenario(entries, default_output_tokens)


def _entry(item: Any, where: str) -> ScenarioEntry:
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: expected a mapping with 'marker' and 'replies'")
    marker = item.get("marker")
    if not isinstance(marker, str) or not marker:
        raise ScenarioError(f"{where}: 'marker' must be a non-empty string")
    where = f"{where} (marker {marker!r})"
    replies = item.get("replies")
    if not isinstance(replies, list) or not replies:
        raise ScenarioError(f"{where}: 'replies' must be a non-empty list")
    return ScenarioEntry(
        marker, tuple(_reply(r, f"{where}: replies[{i}]") for i, r in enumerate(replies))
    )


def _reply(item: Any, where: str) -> Reply:
    if isinstance(item, str):
        return Reply((TextBlock(item),))
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: expected a string or a mapping with 'content'")
    content = item.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    if not isinstance(content, list) or not content:
        raise ScenarioError(f"{where}: 'content' must be a non-empty list of blocks")
    stop_reason = item.get("stop_reason")
    if stop_reason is not None and stop_reason not in STOP_REASONS:
        raise ScenarioError(
            f"{where}: stop_reason {stop_reason!r} is not one of {sorted(STOP_REASONS)}"
        )
    blocks = tuple(_block(b, f"{where}.content[{i}]") for i, b in enumerate(content))
    return Reply(blocks, stop_reason)


def _block(item: Any, where: str) -> ReplyBlock:
    if not isinstance(item, dict):
        raise ScenarioError(f"{where}: expected a mapping with 'type'")
    kind = item.get("type")
    if kind == "text":
        text = item.get("text")
        if not isinstance(text, str):
            raise ScenarioError(f"{where}: a text block needs a string 'text'")
        return TextBlock(text)
    if kind == "tool_use":
        name = item.get("name")
        tool_input = item.get("input", {})
        if not isinstance(name, str) or not name:
            raise ScenarioError(f"{where}: a tool_use block needs a non-empty string 'name'")
        if not isinstance(tool_input, dict):
            raise ScenarioError(f"{where}: a tool_use 'input' must be a mapping")
        return ToolUseBlock(name, tool_input)
    raise ScenarioError(f"{where}: unknown block type {kind!r}; expected 'text' or 'tool_use'")
