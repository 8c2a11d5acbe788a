"""``gatehouse sim``: an Anthropic Messages API upstream as a raw ASGI app.

Routes: ``POST /v1/messages``, ``POST /v1/messages/count_tokens``, ``GET /v1/models``
and ``GET /v1/models/{id}``; anything else is a 404 in the API's error shape.
Every response carries ``request-id``, rate-limit headers and ``x-sim-body-sha256``
(sha256 of the exact request bytes, for pass-through tests). Request headers the
simulator reads: ``x-sim-fault`` (see faults.py), ``x-sim-output-tokens`` (length
of the default reply), ``x-sim-delay-ms`` (pause between SSE events) and
``x-sim-echo-headers: 1`` (echo the received headers, base64url JSON, in
``x-sim-echoed-headers``). Any credential, or none, is accepted.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from gatehouse.sim import faults
from gatehouse.sim.cache import DEFAULT_MAX_ENTRIES, DEFAULT_MIN_CACHEABLE_TOKENS, PromptCache
from gatehouse.sim.faults import Fault, FaultCounter, SimulatedDrop
from gatehouse.sim.models import model_info, model_list
from gatehouse.sim.prompt import analyze, count_tokens
from gatehouse.sim.reply import Turn, default_reply, render
from gatehouse.sim.request import MAX_BODY_BYTES, InvalidRequest, decode_body, validate
from gatehouse.sim.scenario import Scenario, last_tool_result_text, load_scenario
from gatehouse.sim.stream import OVERLOADED_EVENT, SseBody, message_json, sse_body

Sleep = Callable[[float], Awaitable[object]]
Headers = list[tuple[bytes, bytes]]

_JSON = (b"content-type", b"application/json")
_SSE = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]


class _Disconnected(Exception):
    pass


class _TooLarge(Exception):
    pass


@dataclass(slots=True)
class _Incoming:
    """The request headers the simulator acts on."""

    fault: str | None = None
    output_tokens: int | None = None
    delay_ms: int = 0
    echo: bool = False
    session: str | None = None
    content_encoding: bytes = b""


def create_sim_app(
    scenario_path: Path | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    min_cacheable_tokens: int = DEFAULT_MIN_CACHEABLE_TOKENS,
    cache_max_entries: int = DEFAULT_MAX_ENTRIES,
) -> SimApp:
    """Build the simulator; ``clock`` drives cache TTLs, ``sleep`` drives faults' waits.

    Raises ``ScenarioError`` if ``scenario_path`` is given and malformed.
    """
    scenario = load_scenario(scenario_path) if scenario_path is not None else Scenario()
    return SimApp(
        scenario,
        clock=clock,
        sleep=sleep,
        min_cacheable_tokens=min_cacheable_tokens,
        cache_max_entries=cache_max_entries,
    )


class SimApp:
    """The ASGI callable. Holds the prompt cache and the fault counters, nothing else."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        min_cacheable_tokens: int = DEFAULT_MIN_CACHEABLE_TOKENS,
        cache_max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self.scenario = scenario
        self.cache = PromptCache(
            clock=clock, min_tokens=min_cacheable_tokens, max_entries=cache_max_entries
        )
        self._sleep = sleep
        self._fault_counter = FaultCounter()
        self._limits_second = -1
        self._limits: Headers = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        incoming = _read_headers(scope["headers"])
        request_id = "req_sim_" + os.urandom(12).hex()
        try:
            raw = await _read_body(receive)
        except _Disconnected:
            return
        except _TooLarge:
            message = f"Request exceeds the maximum size of {MAX_BODY_BYTES} bytes"
            headers = self._headers(request_id, b"", scope, incoming)
            await _error(send, headers, 413, "request_too_large", message, request_id)
            return
        headers = self._headers(request_id, raw, scope, incoming)
        method, path = scope["method"], scope["path"]
        if path == "/v1/messages" and method == "POST":
            await self._messages(receive, send, raw, incoming, headers, request_id)
        elif path == "/v1/messages/count_tokens" and method == "POST":
            await self._count_tokens(send, raw, incoming, headers, request_id)
        elif path == "/v1/models" and method == "GET":
            await _json(send, 200, headers, orjson.dumps(model_list(scope["query_string"])))
        elif path.startswith("/v1/models/") and method == "GET":
            info = model_info(path.removeprefix("/v1/models/"))
            if info is None:
                message = f"model: {path.removeprefix('/v1/models/')}"
                await _error(send, headers, 404, "not_found_error", message, request_id)
            else:
                await _json(send, 200, headers, orjson.dumps(info))
        else:
            message = f"{method} {path} is not an endpoint of the Anthropic API (gatehouse sim)"
            await _error(send, headers, 404, "not_found_error", message, request_id)

    async def _messages(
        self,
        receive: Receive,
        send: Send,
        raw: bytes,
        incoming: _Incoming,
        headers: Headers,
        request_id: str,
    ) -> None:
        try:
            body = decode_body(raw, incoming.content_encoding)
            validate(body, require_max_tokens=True)
            fault = self._fault(incoming, body)
        except InvalidRequest as exc:
            await _error(send, headers, 400, "invalid_request_error", exc.message, request_id)
            return
        stream = body.get("stream") is True
        name = fault.name if fault is not None else ""
        if fault is not None and (
            name in faults.STATUS_FAULTS or (name == "mid_stream_error" and not stream)
        ):
            await self._fault_error(send, headers, fault, request_id)
            return
        waits_first = name == "slow_first_byte" or (name == "stall" and not stream)
        if fault is not None and waits_first and await self._pause(fault.seconds, receive):
            return
        model: str = body["model"]
        usage = self.cache.account(analyze(body, model))
        turn = self._turn(body, incoming)
        message_id = "msg_sim_" + os.urandom(12).hex()
        if not stream:
            payload = message_json(message_id, model, usage, turn)
            if name == "drop":
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                half = payload[: len(payload) // 2]
                await send({"type": "http.response.body", "body": half, "more_body": True})
                raise SimulatedDrop("gatehouse sim dropped the connection (fault 'drop')")
            await _json(send, 200, headers, payload)
            return
        sse = sse_body(message_id, model, usage, turn)
        await self._stream(receive, send, headers, sse, fault, incoming.delay_ms)

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        headers: Headers,
        sse: SseBody,
        fault: Fault | None,
        delay_ms: int,
    ) -> None:
        """Send an SSE response: message_start alone (a meaningful first byte), then the rest."""
        await send({"type": "http.response.start", "status": 200, "headers": headers + _SSE})
        await send({"type": "http.response.body", "body": sse.start, "more_body": True})
        name = fault.name if fault is not None else ""
        if fault is not None and name == "stall" and await self._pause(fault.seconds, receive):
            return
        if name in ("mid_stream_error", "drop"):
            partial = b"".join(sse.blocks[: max(1, len(sse.blocks) // 2)])
            if name == "mid_stream_error":
                body = partial + OVERLOADED_EVENT
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
            await send({"type": "http.response.body", "body": partial, "more_body": True})
            raise SimulatedDrop("gatehouse sim dropped the connection (fault 'drop')")
        if delay_ms:
            for event in sse.blocks:
                if await self._pause(delay_ms / 1000.0, receive):
                    return
                await send({"type": "http.response.body", "body": event, "more_body": True})
            await send({"type": "http.response.body", "body": sse.end, "more_body": False})
            return
        rest = b"".join(sse.blocks) + sse.end
        await send({"type": "http.response.body", "body": rest, "more_body": False})

    async def _count_tokens(
        self, send: Send, raw: bytes, incoming: _Incoming, headers: Headers, request_id: str
    ) -> None:
        try:
            body = decode_body(raw, incoming.content_encoding)
            validate(body, require_max_tokens=False)
        except InvalidRequest as exc:
            await _error(send, headers, 400, "invalid_request_error", exc.message, request_id)
            return
        await _json(send, 200, headers, orjson.dumps({"input_tokens": count_tokens(body)}))

    def _fault(self, incoming: _Incoming, body: dict[str, Any]) -> Fault | None:
        spec = incoming.fault or faults.fault_in_prompt(body["messages"])
        if not spec:
            return None
        try:
            fault = faults.parse_fault(spec)
        except faults.FaultSpecError as exc:
            raise InvalidRequest(f"x-sim-fault {spec!r}: {exc}") from None
        session = faults.session_of(incoming.session, body)
        return fault if self._fault_counter.fires(fault, session) else None

    async def _fault_error(
        self, send: Send, headers: Headers, fault: Fault, request_id: str
    ) -> None:
        status, error_type, message = faults.STATUS_FAULTS.get(
            fault.name, faults.STATUS_FAULTS["overloaded"]
        )
        extra = [(b"x-should-retry", b"true")]
        if fault.name == "rate_limit":
            extra.append((b"retry-after", str(fault.retry_after).encode()))
        await _error(send, headers + extra, status, error_type, message, request_id)

    def _turn(self, body: dict[str, Any], incoming: _Incoming) -> Turn:
        messages: list[Any] = body["messages"]
        thinking = body.get("thinking")
        thinks = isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")
        omitted = thinks and isinstance(thinking, dict) and thinking.get("display") == "omitted"
        picked = self.scenario.select(messages)
        if picked is None:
            size = incoming.output_tokens or self.scenario.default_output_tokens
            reply = default_reply(body["model"], size)
            return render(
                reply,
                max_tokens=body["max_tokens"],
                thinking=thinks,
                thinking_display_omitted=omitted,
            )
        entry, reply = picked
        return render(
            reply,
            max_tokens=body["max_tokens"],
            thinking=thinks,
            thinking_display_omitted=omitted,
            marker=entry.marker,
            tool_result=last_tool_result_text(messages),
        )

    async def _pause(self, seconds: float, receive: Receive) -> bool:
        """Wait ``seconds``; True if the client went away meanwhile."""
        sleeper = asyncio.ensure_future(self._sleep(seconds))
        watcher = asyncio.ensure_future(_wait_disconnect(receive))
        done, pending = await asyncio.wait({sleeper, watcher}, return_when="FIRST_COMPLETED")
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return watcher in done

    def _headers(self, request_id: str, raw: bytes, scope: Scope, incoming: _Incoming) -> Headers:
        headers = [
            (b"request-id", request_id.encode()),
            (b"x-sim-body-sha256", hashlib.sha256(raw).hexdigest().encode()),
            *self._rate_limit_headers(),
        ]
        if incoming.echo:
            pairs = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
            headers.append((b"x-sim-echoed-headers", base64.urlsafe_b64encode(orjson.dumps(pairs))))
        return headers

    def _rate_limit_headers(self) -> Headers:
        now = int(time.time())
        if now != self._limits_second:
            reset = datetime.fromtimestamp(now + 1, UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
            self._limits_second = now
            self._limits = [
                (b"anthropic-ratelimit-requests-limit", b"4000"),
                (b"anthropic-ratelimit-requests-remaining", b"3999"),
                (b"anthropic-ratelimit-requests-reset", reset),
                (b"anthropic-ratelimit-input-tokens-limit", b"2000000"),
                (b"anthropic-ratelimit-input-tokens-remaining", b"2000000"),
                (b"anthropic-ratelimit-input-tokens-reset", reset),
                (b"anthropic-ratelimit-output-tokens-limit", b"400000"),
                (b"anthropic-ratelimit-output-tokens-remaining", b"400000"),
                (b"anthropic-ratelimit-output-tokens-reset", reset),
            ]
        return self._limits


def _read_headers(raw_headers: list[tuple[bytes, bytes]]) -> _Incoming:
    incoming = _Incoming()
    for name, value in raw_headers:
        if name.startswith(b"x-sim-"):
            if name == b"x-sim-fault":
                incoming.fault = value.decode("latin-1")
            elif name == b"x-sim-output-tokens" and value.isdigit():
                incoming.output_tokens = int(value)
            elif name == b"x-sim-delay-ms" and value.isdigit():
                incoming.delay_ms = int(value)
            elif name == b"x-sim-echo-headers":
                incoming.echo = value.strip() in (b"1", b"true")
        elif name == b"x-claude-code-session-id":
            incoming.session = value.decode("latin-1")
        elif name == b"content-encoding":
            incoming.content_encoding = value.strip().lower()
    return incoming


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _Disconnected
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _json(send: Send, status: int, headers: Headers, body: bytes) -> None:
    headers = [*headers, _JSON, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _error(
    send: Send, headers: Headers, status: int, error_type: str, message: str, request_id: str
) -> None:
    body = orjson.dumps(
        {
            "type": "error",
            "error": {"type": error_type, "message": message},
            "request_id": request_id,
        }
    )
    await _json(send, status, headers, body)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
