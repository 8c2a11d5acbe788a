"""What Claude Code requires of any gateway in front of it, checked without the CLI.

The rules come from Claude Code's gateway protocol (see docs/claude-code.md and the
research notes it cites): ``anthropic-*`` headers and body fields are open lists
forwarded unchanged (a beta header and its body field travel together), the
``system[0]`` attribution block is never touched, a streamed response is SSE
relayed as it arrives — pings and all — and a silent upstream stream is not cut
before Claude Code's own 300 s watchdog would.

The upstream is the real ``gatehouse sim``, which reports the sha256 of the exact
body it received (``x-sim-body-sha256``) and, on request, echoes the headers it
received (``x-sim-echo-headers: 1``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gatehouse.settings import Settings
from gatehouse.sim.traffic import BETAS, claude_code_body, claude_code_headers
from tests.conftest import Gateway
from tests.e2e.conftest import GatewayProcess

SESSION = "5c0d7a3e-9f1b-4c62-8e55-2a4b6c8d0e1f"
BILLING = "x-anthropic-billing-header: cc_version=2.1.332.0b8; cc_entrypoint=sdk-cli;"
VERTEX = "/vertex/projects/acme-ai/locations/us-east5/publishers/anthropic/models/"


def _echoed(response: httpx.Response) -> list[tuple[str, str]]:
    pairs = orjson.loads(base64.urlsafe_b64decode(response.headers["x-sim-echoed-headers"]))
    return [(name.lower(), value) for name, value in pairs]


def _small(**extra: Any) -> dict[str, Any]:
    """A streaming body too small for the simulator's prompt cache: usage is the same
    every time, so responses can be compared byte for byte."""
    return {
        "model": "claude-opus-5-5",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "hello"}],
        "stream": True,
        **extra,
    }


def _events(raw: bytes) -> list[str]:
    return [line[7:] for line in raw.decode().splitlines() if line.startswith("event: ")]


def _without_ids(raw: bytes) -> bytes:
    """Ids the simulator draws at random for each response."""
    return re.sub(rb"(msg|toolu)_sim_[0-9a-f]+", rb"\1_sim_ID", raw)


@pytest.mark.parametrize("path", ["/v1/messages?beta=true", "/v1/messages/count_tokens?beta=true"])
async def test_every_anthropic_header_reaches_upstream_unchanged(
    gateway: Gateway, path: str
) -> None:
    """Every ``anthropic-*`` header — today's and ones no release has sent yet — and
    Claude Code's own headers arrive as sent, repeated headers included."""
    key = await gateway.key()
    base = claude_code_headers(SESSION, key)
    del base["anthropic-beta"]
    sent = [
        *base.items(),
        ("anthropic-beta", BETAS),
        ("anthropic-beta", "some-beta-from-2027-01-01"),  # a second line, kept as such
        ("anthropic-workspace-id", "wrkspc_01AbC"),
        ("anthropic-future-header-2027", "v1; q=0.5,  two  spaces,UPPER"),
        ("x-claude-code-agent-id", "agent-7"),
        ("x-claude-code-prompt-id", "prompt-42"),
        ("x-team", "payments"),
        ("x-sim-echo-headers", "1"),
    ]
    body = _small()
    if "count_tokens" in path:
        body = {"model": body["model"], "messages": body["messages"]}
    response = await gateway.client.post(path, json=body, headers=sent)
    assert response.status_code == 200, response.text
    echoed = _echoed(response)
    for name in {n for n, _ in sent if n.startswith(("anthropic-", "x-claude-code-", "x-team"))}:
        want = [v for n, v in sent if n == name]
        assert [v for n, v in echoed if n == name] == want, name
    for name in ("user-agent", "x-app", "x-stainless-lang", "x-stainless-retry-count"):
        assert dict(echoed)[name] == dict(sent)[name], name
    # The developer's credential is Gatehouse's business, not the upstream's.
    assert key not in str(echoed)


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_every_body_field_reaches_upstream_byte_for_byte(gateway: Gateway, path: str) -> None:
    """Unknown fields at every level, ``role: "system"`` messages, the ``system[0]``
    attribution block and even the body's formatting reach the upstream untouched."""
    key = await gateway.key()
    body = claude_code_body(SESSION, turns=2, size=30_000)
    assert body["system"][0]["text"].startswith("x-anthropic-billing-header:")
    body["system"][0] = {"type": "text", "text": BILLING}
    body["safeguards"] = [{"type": "dangerous_tool_use", "classifier_context": {"rules": []}}]
    body["context_management"] = {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}
    body["output_config"] = {"effort": "high"}
    body["a_field_from_2027"] = {"nested": [1, 2.50, None, "ü"], "flag": True}
    body["tools"].append(
        {"name": "Deferred", "defer_loading": True, "input_schema": {"type": "object"}}
    )
    body["messages"][-1]["future_message_field"] = "kept"
    body["messages"].append({"role": "system", "content": "# Environment\nPlatform: linux"})
    if path.endswith("count_tokens"):
        body = {k: body[k] for k in ("model", "messages", "tools", "system")}
    # Pretty-printed with \u escapes: any re-serialisation would change these bytes.
    raw = orjson.dumps(body, option=orjson.OPT_INDENT_2).replace("ü".encode(), b"\\u00fc")
    headers = claude_code_headers(SESSION, key)
    response = await gateway.client.post(path + "?beta=true", content=raw, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["x-sim-body-sha256"] == hashlib.sha256(raw).hexdigest()


@pytest.mark.parametrize(
    ("label", "body", "fault"),
    [
        ("text", _small(), None),
        ("tool_use", _small(messages=[{"role": "user", "content": "WEATHER_TOOL now"}]), None),
        ("thinking", _small(thinking={"type": "adaptive", "display": "omitted"}), None),
        ("max_tokens", _small(max_tokens=3), None),
        ("mid_stream_error", _small(), "mid_stream_error"),
    ],
)
async def test_sse_is_relayed_byte_for_byte_in_order(
    gateway: Gateway, sim_url: str, label: str, body: dict[str, Any], fault: str | None
) -> None:
    """Through Gatehouse the stream is the simulator's stream: same events, same
    order, same bytes, ``ping`` included (only the random ids differ)."""
    key = await gateway.key()
    headers = {"x-api-key": key, **({"x-sim-fault": fault} if fault else {})}
    through = await gateway.client.post("/v1/messages", json=body, headers=headers)
    async with httpx.AsyncClient(base_url=sim_url) as direct_client:
        direct = await direct_client.post("/v1/messages", json=body, headers=headers)
    for response in (through, direct):
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/event-stream")
    assert _events(through.content) == _events(direct.content)
    assert "ping" in _events(through.content)
    assert _without_ids(through.content) == _without_ids(direct.content)


async def test_a_silent_upstream_stream_is_relayed_not_cut(gateway: Gateway) -> None:
    """Claude Code waits 300 s for a silent stream (its watchdog); a gateway that gave
    up sooner would turn a slow model into errors. The upstream here goes silent
    after message_start and then finishes normally."""
    assert Settings().upstream_idle_timeout >= 300
    assert Settings().upstream_header_timeout >= 300
    key = await gateway.key()
    started = time.monotonic()
    response = await gateway.client.post(
        "/v1/messages", json=_small(), headers={"x-api-key": key, "x-sim-fault": "stall,ms=1200"}
    )
    assert time.monotonic() - started >= 1.1
    assert response.status_code == 200
    events = _events(response.content)
    assert events[0] == "message_start"
    assert events[-1] == "message_stop"
    [record] = await gateway.usage(1)
    assert (record.status, record.error_type, record.stop_reason) == (200, "", "end_turn")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/messages?beta=true", _small()),
        ("/v1/messages", _small(messages=[{"role": "user", "content": "WEATHER_TOOL now"}])),
        ("/v1/messages", _small(thinking={"type": "enabled", "budget_tokens": 1024})),
        ("/v1/messages", _small(max_tokens=1)),
        (
            VERTEX + "claude-opus-5-5:streamRawPredict",
            {
                "anthropic_version": "vertex-2023-10-16",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": "hello"}],
                "stream": True,
            },
        ),
    ],
)
async def test_a_streaming_request_is_never_answered_with_json(
    gateway: Gateway, path: str, body: dict[str, Any]
) -> None:
    """Claude Code sends ``Accept: application/json`` even when it streams; answering
    JSON would make it repeat the request without streaming (two upstream calls)."""
    key = await gateway.key()
    headers = {**claude_code_headers(SESSION, key), "accept": "application/json"}
    response = await gateway.client.post(path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.content.startswith(b"event: message_start\n")


@pytest.fixture
def gateway_socket(tmp_path: Path, sim_url: str) -> Iterator[GatewayProcess]:
    """`gatehouse serve` on a real socket: an in-process transport would hide buffering."""
    from gatehouse.cli.processes import free_port

    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "GATEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "GATEHOUSE_UPSTREAM_URL": sim_url,
        "GATEHOUSE_SECRET_KEY": "conformance-secret",
        "GATEHOUSE_POLICY_MODE": "observe",  # not a policy test
    }
    gw = GatewayProcess(env=env, port=free_port(), log=tmp_path / "gateway.log")
    yield gw
    gw.stop()


def test_events_are_relayed_as_they_arrive(gateway_socket: GatewayProcess) -> None:
    """The first event reaches the client while the upstream is still silent: nothing
    in Gatehouse (or its server) buffers a stream, even with Claude Code's
    ``Accept-Encoding: gzip, deflate, br, zstd``."""
    key = gateway_socket.new_key()
    gateway_socket.start()
    headers = {
        "x-api-key": key,
        "x-sim-fault": "stall,ms=1200",
        "accept": "application/json",
        "accept-encoding": "gzip, deflate, br, zstd",
    }
    with httpx.Client(base_url=gateway_socket.url, timeout=10) as client:
        started = time.monotonic()
        with client.stream("POST", "/v1/messages", json=_small(), headers=headers) as response:
            assert response.status_code == 200
            assert "content-encoding" not in response.headers
            chunks = response.iter_raw()
            first = next(chunks)
            first_at = time.monotonic() - started
            rest = b"".join(chunks)
            done_at = time.monotonic() - started
    assert first.startswith(b"event: message_start\n")
    assert first_at < 0.8, f"first event after {first_at:.2f} s: the stream was buffered"
    assert done_at >= 1.1
    assert _events(first + rest)[-1] == "message_stop"
