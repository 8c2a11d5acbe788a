"""The simulator app in-process: wire format, validation, models, faults, scenarios."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gatehouse.sim.app import SimApp, create_sim_app
from gatehouse.sim.faults import SimulatedDrop

MODEL = "claude-opus-5-5"
HELLO = {"model": MODEL, "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]}
SCENARIO = """
- marker: RUN_TOOL
  replies:
    - content:
        - {type: text, text: "Running it."}
        - type: tool_use
          name: Bash
          input: {command: "echo {marker}", options: {timeout: 5, env: [a, "b\\"c"]}}
    - "The tool printed: {tool_result}"
- marker: FIRST_ONLY
  replies: ["only reply"]
"""


class RecordingSleep:
    """Stands in for asyncio.sleep: records how long the app asked to wait."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
def app(tmp_path: Path, sleeps: RecordingSleep) -> SimApp:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    return create_sim_app(scenario, sleep=sleeps, min_cacheable_tokens=16)


@pytest.fixture
async def client(app: SimApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        yield client


def events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for chunk in response.text.split("\n\n"):
        if chunk:
            event, data = chunk.split("\n")
            assert event.startswith("event: ") and data.startswith("data: ")
            out.append((event[7:], json.loads(data[6:])))
    return out


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": [{"type": "text", "text": text}]}


def request(*messages: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 4096, "messages": list(messages), **fields}


async def call_raw(
    app: SimApp, body: bytes, headers: list[tuple[bytes, bytes]], *, disconnect: bool = False
) -> tuple[list[dict[str, Any]], BaseException | None]:
    """Drive the ASGI app directly, recording every send() (and what it raised)."""
    sent: list[dict[str, Any]] = []
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        if not disconnect:
            await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/messages",
        "query_string": b"beta=true",
        "headers": [(b"content-type", b"application/json"), *headers],
    }
    try:
        await app(scope, receive, send)
    except SimulatedDrop as exc:
        return sent, exc
    return sent, None


# -- streaming and JSON responses ---------------------------------------------------------


async def test_stream_events_come_in_the_api_order(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/messages?beta=true", json={**HELLO, "stream": True})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["request-id"].startswith("req_sim_")
    assert response.headers["anthropic-ratelimit-requests-limit"]
    names = [name for name, _ in events(response)]
    deltas = names.count("content_block_delta")
    assert deltas >= 2
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    parsed = events(response)
    start = parsed[0][1]["message"]
    assert start["id"].startswith("msg_sim_") and start["model"] == MODEL
    assert start["usage"]["output_tokens"] == 1
    text = "".join(d["delta"]["text"] for n, d in parsed if n == "content_block_delta")
    assert text == f"Hello from gatehouse sim. You are talking to {MODEL}."
    final = parsed[-2][1]
    assert final["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert final["usage"]["output_tokens"] == (len(text) + 3) // 4
    for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
        assert final["usage"][key] == start["usage"][key]


async def test_non_streaming_reply_is_a_message_with_full_usage(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/messages", json=HELLO)
    message = response.json()
    assert response.headers["content-type"] == "application/json"
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["type"] == "text"
    assert message["stop_reason"] == "end_turn" and message["stop_sequence"] is None
    assert message["usage"] == {
        "input_tokens": message["usage"]["input_tokens"],
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": message["usage"]["output_tokens"],
        "service_tier": "standard",
    }


async def test_message_start_is_sent_on_its_own_then_the_rest_at_once(app: SimApp) -> None:
    sent, error = await call_raw(app, orjson.dumps({**HELLO, "stream": True}), [])
    assert error is None
    assert [m["type"] for m in sent] == ["http.response.start", *["http.response.body"] * 2]
    assert sent[1]["body"].startswith(b"event: message_start\n") and sent[1]["more_body"]
    assert sent[1]["body"].count(b"event:") == 1
    assert sent[2]["body"].endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert not sent[2]["more_body"]


async def test_tool_use_input_streams_as_json_deltas(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/messages", json=request(user("please RUN_TOOL now"), stream=True)
    )
    parsed = events(response)
    starts = [d["content_block"] for n, d in parsed if n == "content_block_start"]
    assert [b["type"] for b in starts] == ["text", "tool_use"]
    assert starts[1]["id"].startswith("toolu_sim_") and starts[1]["input"] == {}
    partial = [
        d["delta"]["partial_json"]
        for n, d in parsed
        if n == "content_block_delta" and d["index"] == 1
    ]
    assert len(partial) >= 2
    assert json.loads("".join(partial)) == {
        "command": "echo RUN_TOOL",
        "options": {"timeout": 5, "env": ["a", 'b"c']},
    }
    assert parsed[-2][1]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize("display", ["summarized", "omitted"])
async def test_thinking_block_comes_first(client: httpx.AsyncClient, display: str) -> None:
    body = {**HELLO, "stream": True, "thinking": {"type": "adaptive", "display": display}}
    parsed = events(await client.post("/v1/messages", json=body))
    assert parsed[1][1]["content_block"]["type"] == "thinking"
    kinds = [
        d["delta"]["type"] for n, d in parsed if n == "content_block_delta" and d["index"] == 0
    ]
    if display == "omitted":
        assert kinds == ["signature_delta"]
    else:
        assert kinds[-1] == "signature_delta" and set(kinds[:-1]) == {"thinking_delta"}
    plain = events(await client.post("/v1/messages", json={**HELLO, "stream": True}))
    assert parsed[-2][1]["usage"]["output_tokens"] > plain[-2][1]["usage"]["output_tokens"]


async def test_output_tokens_header_sizes_the_default_reply(client: httpx.AsyncClient) -> None:
    headers = {"x-sim-output-tokens": "500"}
    response = await client.post("/v1/messages", json=HELLO, headers=headers)
    assert response.json()["usage"]["output_tokens"] == 500
    short = await client.post("/v1/messages", json={**HELLO, "max_tokens": 20}, headers=headers)
    assert short.json()["stop_reason"] == "max_tokens"
    assert short.json()["usage"]["output_tokens"] == 20


async def test_unknown_fields_and_system_messages_are_accepted(client: httpx.AsyncClient) -> None:
    body = request(
        user("hi"),
        {"role": "system", "content": "# Environment"},
        safeguards=[{"type": "dangerous_tool_use"}],
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        output_config={"effort": "medium"},
        metadata={"user_id": '{"session_id":"s"}'},
        tools=[{"name": "Placeholder", "input_schema": {}, "defer_loading": True}],
    )
    assert (await client.post("/v1/messages", json=body)).status_code == 200


async def test_gzip_request_bodies_are_accepted(client: httpx.AsyncClient) -> None:
    raw = gzip.compress(orjson.dumps(HELLO))
    response = await client.post("/v1/messages", content=raw, headers={"content-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["x-sim-body-sha256"] == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{not json", "Request body is not valid JSON"),
        (b"[1, 2]", "Request body must be a JSON object"),
        (orjson.dumps({"max_tokens": 5, "messages": [user("x")]}), "model: Field required"),
        (orjson.dumps({"model": MODEL, "max_tokens": 5}), "messages: Field required"),
        (orjson.dumps({"model": MODEL, "max_tokens": 5, "messages": []}), "at least one message"),
        (orjson.dumps({"model": MODEL, "messages": [user("x")]}), "max_tokens: Field required"),
        (orjson.dumps({**HELLO, "max_tokens": "5"}), "max_tokens: Input should be a valid integer"),
        (orjson.dumps({**HELLO, "messages": [{"role": "user"}]}), "messages.0.content: Field"),
    ],
)
async def test_invalid_requests_get_anthropic_400s(
    client: httpx.AsyncClient, content: bytes, message: str
) -> None:
    response = await client.post("/v1/messages", content=content)
    assert response.status_code == 400
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert message in body["error"]["message"]
    assert body["request_id"] == response.headers["request-id"]


async def test_body_hash_covers_the_exact_bytes(client: httpx.AsyncClient) -> None:
    raw = (
        b'{ "model" : "claude-opus-5-5",\n "max_tokens": 9,'
        b' "messages": [{"role":"user","content":"hi"}]}'
    )
    response = await client.post("/v1/messages?beta=true", content=raw)
    assert response.headers["x-sim-body-sha256"] == hashlib.sha256(raw).hexdigest()
    missing = await client.get("/nowhere")
    assert missing.headers["x-sim-body-sha256"] == hashlib.sha256(b"").hexdigest()


async def test_echo_headers_on_request(client: httpx.AsyncClient) -> None:
    plain = await client.post("/v1/messages", json=HELLO)
    assert "x-sim-echoed-headers" not in plain.headers
    headers = {"x-sim-echo-headers": "1", "anthropic-beta": "a,b", "x-api-key": "k"}
    response = await client.post("/v1/messages", json=HELLO, headers=headers)
    pairs = orjson.loads(base64.urlsafe_b64decode(response.headers["x-sim-echoed-headers"]))
    assert ["anthropic-beta", "a,b"] in pairs and ["x-api-key", "k"] in pairs


# -- count_tokens, models, 404 ------------------------------------------------------------


async def test_count_tokens_is_deterministic_and_matches_message_usage(
    client: httpx.AsyncClient,
) -> None:
    body = request(user("count me " * 100), system="You are helpful.", tools=[{"name": "T"}])
    body.pop("max_tokens")
    counts = {
        (await client.post("/v1/messages/count_tokens?beta=true", json=body)).json()["input_tokens"]
        for _ in range(3)
    }
    assert len(counts) == 1
    usage = (await client.post("/v1/messages", json={**body, "max_tokens": 5})).json()["usage"]
    assert usage["input_tokens"] == counts.pop()
    bad = await client.post("/v1/messages/count_tokens", json={"messages": [user("x")]})
    assert bad.status_code == 400 and bad.json()["error"]["message"] == "model: Field required"


async def test_models_list_and_lookup(client: httpx.AsyncClient) -> None:
    listing = (await client.get("/v1/models?limit=1000")).json()
    ids = [m["id"] for m in listing["data"]]
    assert {"claude-opus-5-5", "claude-sonnet-4-6", "claude-haiku-4-5"} <= set(ids)
    assert listing["has_more"] is False
    assert (listing["first_id"], listing["last_id"]) == (ids[0], ids[-1])
    assert all(m["type"] == "model" and m["display_name"] for m in listing["data"])
    page = (await client.get("/v1/models?limit=2")).json()
    assert len(page["data"]) == 2 and page["has_more"] is True
    following = (await client.get(f"/v1/models?limit=2&after_id={page['last_id']}")).json()
    assert following["data"][0]["id"] == ids[2]
    one = await client.get("/v1/models/claude-haiku-4-5")
    assert one.json()["display_name"] == "Claude Haiku 4.5"
    missing = await client.get("/v1/models/gpt-4")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found_error"


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/messages"), ("POST", "/v2/x")])
async def test_other_routes_are_anthropic_404s(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert response.headers["request-id"].startswith("req_sim_")


# -- prompt caching through the app -------------------------------------------------------


async def test_cache_usage_across_two_requests(client: httpx.AsyncClient) -> None:
    system = [{"type": "text", "text": "S" * 800, "cache_control": {"type": "ephemeral"}}]
    body = request(user("hello"), system=system, stream=True)
    first = events(await client.post("/v1/messages", json=body))[0][1]["message"]["usage"]
    second = events(await client.post("/v1/messages", json=body))[0][1]["message"]["usage"]
    written = first["cache_creation_input_tokens"]
    assert written > 200 and first["cache_read_input_tokens"] == 0
    assert first["cache_creation"] == {
        "ephemeral_5m_input_tokens": written,
        "ephemeral_1h_input_tokens": 0,
    }
    assert second["cache_read_input_tokens"] == written
    assert second["cache_creation_input_tokens"] == 0
    assert second["input_tokens"] == first["input_tokens"]


# -- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "status", "error_type"),
    [
        ("rate_limit,retry_after=7", 429, "rate_limit_error"),
        ("overloaded", 529, "overloaded_error"),
        ("server_error", 500, "api_error"),
    ],
)
async def test_status_faults(
    client: httpx.AsyncClient, spec: str, status: int, error_type: str
) -> None:
    by_header = await client.post("/v1/messages", json=HELLO, headers={"x-sim-fault": spec})
    marked = request(user(f"hello [[sim:fault={spec}]]"), stream=True)
    by_prompt = await client.post("/v1/messages", json=marked)
    for response in (by_header, by_prompt):
        assert response.status_code == status
        assert response.json()["error"]["type"] == error_type
        assert response.headers["x-should-retry"] == "true"
    if status == 429:
        assert by_header.headers["retry-after"] == "7"


async def test_times_counts_per_session(client: httpx.AsyncClient) -> None:
    spec = {"x-sim-fault": "overloaded,times=2"}
    a = {**spec, "x-claude-code-session-id": "a"}
    statuses = [
        (await client.post("/v1/messages", json=HELLO, headers=a)).status_code for _ in range(3)
    ]
    assert statuses == [529, 529, 200]
    b = {**spec, "x-claude-code-session-id": "b"}
    assert (await client.post("/v1/messages", json=HELLO, headers=b)).status_code == 529
    # From the prompt, with the session from metadata.user_id (as the Claude Code CLI sends it).
    body = request(
        user("[[sim:fault=server_error,times=1]] hi"),
        metadata={"user_id": '{"device_id":"d","session_id":"c"}'},
    )
    assert [(await client.post("/v1/messages", json=body)).status_code for _ in range(2)] == [
        500,
        200,
    ]


async def test_unknown_fault_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/messages", json=HELLO, headers={"x-sim-fault": "boom"})
    assert response.status_code == 400
    assert "unknown sim fault 'boom'" in response.json()["error"]["message"]


async def test_mid_stream_error(client: httpx.AsyncClient) -> None:
    headers = {"x-sim-fault": "mid_stream_error"}
    response = await client.post("/v1/messages", json={**HELLO, "stream": True}, headers=headers)
    assert response.status_code == 200
    parsed = events(response)
    assert parsed[0][0] == "message_start" and parsed[1][0] == "content_block_start"
    assert parsed[-1] == (
        "error",
        {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
    )
    assert "message_stop" not in [name for name, _ in parsed]
    not_streamed = await client.post("/v1/messages", json=HELLO, headers=headers)
    assert not_streamed.status_code == 529


async def test_slow_first_byte_waits_before_anything(app: SimApp, sleeps: RecordingSleep) -> None:
    body = orjson.dumps({**HELLO, "stream": True})
    sent, _ = await call_raw(app, body, [(b"x-sim-fault", b"slow_first_byte,ms=250")])
    assert sleeps.calls == [0.25]
    assert sent[0]["type"] == "http.response.start" and sent[-1]["more_body"] is False


async def test_stall_pauses_after_message_start_then_finishes(
    client: httpx.AsyncClient, sleeps: RecordingSleep
) -> None:
    body = {**HELLO, "stream": True}
    response = await client.post("/v1/messages", json=body, headers={"x-sim-fault": "stall"})
    assert sleeps.calls == [3600.0]
    assert events(response)[-1][0] == "message_stop"


async def test_stall_ends_quietly_when_the_client_leaves(app: SimApp) -> None:
    never = asyncio.Event()

    async def forever(seconds: float) -> None:
        await never.wait()

    stalling = SimApp(app.scenario, sleep=forever)
    body = orjson.dumps({**HELLO, "stream": True})
    sent, error = await call_raw(stalling, body, [(b"x-sim-fault", b"stall")], disconnect=True)
    assert error is None
    assert len(sent) == 2 and sent[1]["body"].startswith(b"event: message_start")


@pytest.mark.parametrize("stream", [True, False])
async def test_drop_raises_after_a_partial_body(app: SimApp, stream: bool) -> None:
    body = orjson.dumps({**HELLO, "stream": stream})
    sent, error = await call_raw(app, body, [(b"x-sim-fault", b"drop")])
    assert isinstance(error, SimulatedDrop)
    assert sent[0]["status"] == 200
    assert all(m.get("more_body", True) for m in sent[1:])
    partial = b"".join(m["body"] for m in sent[1:])
    assert partial
    if stream:
        assert partial.startswith(b"event: message_start") and b"message_stop" not in partial
    else:
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(partial)


async def test_delay_ms_paces_every_event(app: SimApp, sleeps: RecordingSleep) -> None:
    body = orjson.dumps({**HELLO, "stream": True})
    sent, _ = await call_raw(app, body, [(b"x-sim-delay-ms", b"20")])
    assert len(sent) > 5 and set(sleeps.calls) == {0.02}
    assert len(sleeps.calls) == len(sent) - 3  # every event but message_start and the end


# -- scenarios ----------------------------------------------------------------------------


async def test_scenario_replies_follow_the_conversation(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/messages", json=request(user("RUN_TOOL please")))).json()
    tool_use = first["content"][1]
    assert first["stop_reason"] == "tool_use"
    retried = (await client.post("/v1/messages", json=request(user("RUN_TOOL please")))).json()
    assert retried["content"][1]["input"] == tool_use["input"]  # stateless: retries agree
    result = {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "hello-from-tool"},
            {"type": "text", "text": "<system-reminder>noise</system-reminder>"},
        ],
    }
    second_turn = request(
        user("RUN_TOOL please"), {"role": "assistant", "content": first["content"]}, result
    )
    second = (await client.post("/v1/messages", json=second_turn)).json()
    assert second["content"] == [{"type": "text", "text": "The tool printed: hello-from-tool"}]
    assert second["stop_reason"] == "end_turn"
    later = request(
        *second_turn["messages"],
        {"role": "assistant", "content": second["content"]},
        user("and again?"),
    )
    past_end = (await client.post("/v1/messages", json=later)).json()
    assert past_end["content"][0]["text"] == "The tool printed: hello-from-tool"


async def test_the_most_recent_marked_user_message_wins(client: httpx.AsyncClient) -> None:
    body = request(
        user("RUN_TOOL"),
        {"role": "assistant", "content": "ok"},
        user("FIRST_ONLY"),
    )
    reply = (await client.post("/v1/messages", json=body)).json()
    assert reply["content"] == [{"type": "text", "text": "only reply"}]
    unmatched = (await client.post("/v1/messages", json=request(user("nothing")))).json()
    assert unmatched["content"][0]["text"].startswith("Hello from gatehouse sim")
