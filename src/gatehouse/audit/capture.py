"""What the gateway hands the audit store for one request: the spool entry.

Pure: no I/O, no store or proxy imports.

`ResponseAssembler` is fed the relayed response — SSE bytes chunk by chunk,
or a whole JSON body — and rebuilds the content blocks the model produced,
in the form a client sends them back next turn (so they share an address
with that next turn's copy and are stored once).

`AuditCapture` lives once per process.  ``entry(...)`` builds the spool entry
``{"kind": "audit", ...}`` of one request: its envelope, its block list as a
*base* (a prefix of the same chain's previous request) plus a *tail*, and the
contents of only those blocks this process has not spooled recently — so the
spool, like the store, grows with unique content rather than with the full
history every Claude Code turn resends.  Call ``spooled(entry)`` once the
entry is durable; only then does it become a base and its blocks "sent".
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from gatehouse.audit.records import REQUEST, chain_of
from gatehouse.content import Block, blocks, make_block

AUDIT = "audit"
ENTRY_VERSION = 1
THINKING_POLICIES = ("keep", "hash", "drop")
THINKING_KINDS = frozenset({"thinking", "redacted_thinking"})
STUB_KIND = "thinking_digest"

# Request headers worth keeping: what the client was, never what authenticated it.
SELECTED_HEADERS = (
    "user-agent",
    "anthropic-version",
    "anthropic-beta",
    "x-app",
    "x-claude-code-session-id",
    "x-stainless-lang",
    "x-stainless-package-version",
    "x-stainless-runtime-version",
)
BODY_PARTS = frozenset({"system", "tools", "messages"})
_DELTA_FIELDS = {"text_delta": "text", "thinking_delta": "thinking", "signature_delta": "signature"}


class ResponseAssembler:
    """Rebuilds a response's content blocks from its SSE stream or JSON body."""

    def __init__(self) -> None:
        self._buffer = b""
        self._blocks: dict[int, dict[str, Any]] = {}
        self._json: dict[int, list[str]] = {}
        self._body: dict[str, Any] | None = None

    def feed(self, chunk: bytes) -> None:
        """Consume one chunk of the SSE stream, exactly as relayed."""
        buffer = self._buffer + chunk if self._buffer else chunk
        buffer = buffer.replace(b"\r\n", b"\n")
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            self._event(buffer[start:end])
            start = end + 2
        self._buffer = buffer[start:]

    def feed_json(self, body: bytes) -> None:
        """A non-streaming response: its ``content`` list is the response."""
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        if isinstance(parsed, dict) and isinstance(parsed.get("content"), list):
            self._body = parsed

    def blocks(self) -> list[Block]:
        """The response's blocks so far, paths ``response[i]``, in index order."""
        if self._body is not None:
            content = [b for b in self._body["content"] if isinstance(b, dict)]
        else:
            content = [self._finish(i) for i in sorted(self._blocks)]
        return [make_block(f"response[{i}]", "assistant", b) for i, b in enumerate(content)]

    def _event(self, raw: bytes) -> None:
        data = b"".join(line[5:].strip() for line in raw.split(b"\n") if line.startswith(b"data:"))
        if not data:
            return
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(event, dict):
            return
        kind, index = event.get("type"), event.get("index")
        if kind == "message_start":
            message = event.get("message")
            content = message.get("content") if isinstance(message, dict) else None
            for i, block in enumerate(content if isinstance(content, list) else []):
                if isinstance(block, dict):
                    self._blocks[i] = dict(block)
        elif not isinstance(index, int):
            return
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            self._blocks[index] = dict(event["content_block"])
        elif kind == "content_block_delta" and isinstance(event.get("delta"), dict):
            self._delta(index, event["delta"])

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        block = self._blocks.setdefault(index, {"type": "text", "text": ""})
        kind = delta.get("type")
        if kind == "input_json_delta":
            self._json.setdefault(index, []).append(str(delta.get("partial_json", "")))
        elif isinstance(kind, str) and kind in _DELTA_FIELDS:
            field = _DELTA_FIELDS[kind]
            block[field] = str(block.get(field) or "") + str(delta.get(field, ""))
        elif kind == "citations_delta" and isinstance(delta.get("citation"), dict):
            citations = block.get("citations")
            block["citations"] = [*(citations if isinstance(citations, list) else [])]
            block["citations"].append(delta["citation"])

    def _finish(self, index: int) -> dict[str, Any]:
        block = dict(self._blocks[index])
        parts = self._json.get(index)
        if parts is not None:
            text = "".join(parts)
            try:
                block["input"] = orjson.loads(text) if text else {}
            except orjson.JSONDecodeError:
                # A stream cut mid-argument: keep what arrived, as text.
                block["input"] = {"_partial_json": text}
        return block


def apply_thinking(block: Block, policy: str) -> Block | None:
    """``keep`` the block, ``hash`` it (a stub naming its address), or ``drop`` it."""
    if block.kind not in THINKING_KINDS or policy == "keep":
        return block
    if policy == "drop":
        return None
    stub = {"type": STUB_KIND, "digest": block.digest, "size": len(block.raw)}
    return make_block(block.path, block.role, stub)


def select_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
    items = headers.items() if isinstance(headers, Mapping) else headers
    wanted = {k.lower(): v for k, v in items if k.lower() in SELECTED_HEADERS}
    return dict(sorted(wanted.items()))


class AuditCapture:
    """Builds audit spool entries; one per process (it remembers what it sent)."""

    def __init__(
        self,
        *,
        thinking: str = "keep",
        sessions: int = 2048,
        remembered_blocks: int = 50_000,
        block_max_age: float = 600.0,
        clock: Any = time.monotonic,
    ) -> None:
        if thinking not in THINKING_POLICIES:
            raise ValueError(f"thinking must be one of {THINKING_POLICIES}, not {thinking!r}")
        self.thinking = thinking
        self._sessions: OrderedDict[str, tuple[str, list[tuple[str, str]]]] = OrderedDict()
        self._max_sessions = sessions
        # Entries built but not yet reported spooled: request id -> (chain, pairs).
        self._pending: OrderedDict[str, tuple[str, list[tuple[str, str]]]] = OrderedDict()
        # digest -> when its content was last spooled.  Bounded in size and in age:
        # an old enough block is sent again, in case retention swept it meanwhile.
        self._sent: OrderedDict[str, float] = OrderedDict()
        self._max_blocks = remembered_blocks
        self._max_age = block_max_age
        self._clock = clock

    def entry(
        self,
        *,
        request_id: str,
        ts: float,
        parsed: Mapping[str, Any],
        response: Sequence[Block] = (),
        developer: str,
        team: str = "",
        session_id: str = "",
        repository: str = "",
        model: str = "",
        endpoint: str = "/v1/messages",
        status: int = 200,
        error_type: str = "",
        usage_id: str = "",
        cost_micros: int | None = None,
        ttfb_ms: float | None = None,
        duration_ms: float = 0.0,
        headers: Mapping[str, str] | None = None,
        guard: str = "",
        findings: Sequence[Mapping[str, Any]] = (),
        decision: str = "",
        request_blocks: Sequence[Block] | None = None,
    ) -> dict[str, Any]:
        """The spool entry for one request (see the module docstring).

        ``request_blocks`` may pass ``gatehouse.content.blocks(parsed)`` when the
        caller already has them; ``findings`` must already be masked.
        """
        listed = blocks(parsed) if request_blocks is None else request_blocks
        kept = [b for b in (apply_thinking(b, self.thinking) for b in listed) if b is not None]
        answered = [b for b in (apply_thinking(b, self.thinking) for b in response) if b]
        chain = chain_of(REQUEST, session_id, developer)
        pairs = [(b.path, b.digest) for b in kept]
        base_id, base_len = None, 0
        previous = self._sessions.get(chain)
        if previous is not None:
            base_len = _common_prefix(previous[1], pairs)
            base_id = previous[0] if base_len else None
        now = self._clock()
        contents: dict[str, list[str]] = {}
        for block in (*kept, *answered):
            if block.digest in contents:
                continue
            sent = self._sent.get(block.digest)
            if sent is None or now - sent > self._max_age:
                contents[block.digest] = [block.kind, block.raw.decode()]
        params = {k: v for k, v in parsed.items() if k not in BODY_PARTS}
        entry = {
            "kind": AUDIT,
            "v": ENTRY_VERSION,
            "id": request_id,
            "ts": ts,
            "session_id": session_id,
            "chain": chain,
            "developer": developer,
            "team": team,
            "repository": repository,
            "model": model,
            "endpoint": endpoint,
            "status": status,
            "error_type": error_type,
            "usage_id": usage_id,
            "cost_micros": cost_micros,
            "ttfb_ms": ttfb_ms,
            "duration_ms": duration_ms,
            "params": params,
            "headers": select_headers(headers or {}),
            "base_id": base_id,
            "base_len": base_len,
            "tail": [list(p) for p in pairs[base_len:]],
            "request_len": len(pairs),
            "response": [[b.path, b.digest] for b in answered],
            "guard": guard,
            "findings": [dict(f) for f in findings],
            "decision": decision,
            "blocks": contents,
        }
        self._pending[request_id] = (chain, pairs)
        while len(self._pending) > self._max_sessions:
            self._pending.popitem(last=False)
        return entry

    def spooled(self, entry: dict[str, Any]) -> None:
        """``entry`` is durable: later entries may lean on it and on its blocks."""
        pending = self._pending.pop(entry["id"], None)
        if pending is None:
            return
        chain, pairs = pending
        self._sessions[chain] = (entry["id"], pairs)
        self._sessions.move_to_end(chain)
        while len(self._sessions) > self._max_sessions:
            self._sessions.popitem(last=False)
        now = self._clock()
        for digest in entry["blocks"]:
            self._sent[digest] = now
            self._sent.move_to_end(digest)
        while len(self._sent) > self._max_blocks:
            self._sent.popitem(last=False)


def _common_prefix(old: Sequence[tuple[str, str]], new: Sequence[tuple[str, str]]) -> int:
    n = 0
    for a, b in zip(old, new, strict=False):
        if a != b:
            break
        n += 1
    return n
