"""The data plane in-process (httpx ASGITransport) against a real `gatehouse sim`."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import hashlib
import time

import orjson
import pytest

from gatehouse.cli.processes import free_port
from gatehouse.sim.traffic import claude_code_body, claude_code_headers
from tests.conftest import Gateway, running_gateway

SESSION = "0b9f7c1e-3a52-4a36-9d0e-1d2a5d4f6a01"


def _small(stream: bool = True, **extra: object) -> dict[str, object]:
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hello"}],
        "stream": stream,
        **extra,
    }


def _anthropic_error(response, status: int, error_type: str) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == error_type
    assert "Traceback" not in response.text
    return str(body["error"]["message"])


async def test_missing_key_is_refused_with_help_and_no_retry(gateway: Gateway) -> None:
    response = await gateway.client.post("/v1/messages", json=_small())
    message = _anthropic_error(response, 401, "authentication_error")
    assert "ANTHROPIC_AUTH_TOKEN" in message
    assert response.headers["x-should-retry"] == "false"
    [record] = await gateway.usage(1)
    assert (record.status, record.error_type) == (401, "authentication_error")


async def test_unknown_and_revoked_keys_are_refused(gateway: Gateway) -> None:
    key = await gateway.key()
    response = await gateway.client.post(
        "/v1/messages", json=_small(), headers={"x-api-key": key + "x"}
    )
    assert key not in _anthropic_error(response, 401, "authentication_error")
    key_id = key.split("_")[1]
    assert await gateway.db.revoke_key(key_id, time.time())
    await gateway.app.state.services.proxy.keys.refresh()  # type: ignore[attr-defined]
    response = await gateway.client.post(
        "/v1/messages", json=_small(), headers={"authorization": f"Bearer {key}"}
    )
    assert "revoked" in _anthropic_error(response, 401, "authentication_error")


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"messages": []}', "`model` is required"),
        (b'{"model": "claude-sonnet-4-6"}', "`messages` is required"),
    ],
)
async def test_malformed_requests_say_what_is_wrong(
    gateway: Gateway, content: bytes, needle: str
) -> None:
    key = await gateway.key()
    response = await gateway.client.post(
        "/v1/messages", content=content, headers={"x-api-key": key}
    )
    assert needle in _anthropic_error(response, 400, "invalid_request_error")
    assert response.headers["x-should-retry"] == "false"


async def test_body_over_the_limit_is_413(settings, sim_url) -> None:  # type: ignore[no-untyped-def]
    async with running_gateway(dataclasses.replace(settings, max_body_bytes=1000)) as gw:
        key = await gw.key()
        big = _small(messages=[{"role": "user", "content": "x" * 5000}])
        response = await gw.client.post("/v1/messages", json=big, headers={"x-api-key": key})
        assert "at most 1,000" in _anthropic_error(response, 413, "request_too_large")
        # A small gzip body that inflates past the limit is refused too.
        response = await gw.client.post(
            "/v1/messages",
            content=gzip.compress(orjson.dumps(big)),
            headers={"x-api-key": key, "content-encoding": "gzip"},
        )
        _anthropic_error(response, 413, "request_too_large")


async def test_claude_code_body_reaches_upstream_byte_for_byte(gateway: Gateway) -> None:
    key = await gateway.key()
    body = claude_code_body(SESSION, turns=3, size=60_000)
    body["safeguards"] = [{"type": "dangerous_tool_use", "classifier_context": {"v": 1}}]
    body["future_field"] = {"nested": [1, 2.50, "ü"], "order": "kept"}
    raw = orjson.dumps(body).replace(b'"order":"kept"', b'"order" :  "kept"')
    headers = claude_code_headers(SESSION, key, repo="github.com/acme/payments")
    headers["x-sim-echo-headers"] = "1"
    response = await gateway.client.post("/v1/messages?beta=true", content=raw, headers=headers)
    assert response.status_code == 200
    assert response.headers["x-sim-body-sha256"] == hashlib.sha256(raw).hexdigest()
    echoed = dict(orjson.loads(base64.urlsafe_b64decode(response.headers["x-sim-echoed-headers"])))
    echoed = {k.lower(): v for k, v in echoed.items()}
    for name in (
        "anthropic-beta",
        "anthropic-version",
        "x-stainless-lang",
        "x-app",
        "x-claude-code-session-id",
        "user-agent",
    ):
        assert echoed[name] == headers[name], name
    # The developer's key never leaves; Gatehouse's own control headers stay home.
    assert "authorization" not in echoed
    assert key not in str(echoed)
    assert "x-gatehouse-repo" not in echoed


async def test_stream_is_relayed_and_usage_recorded(gateway: Gateway) -> None:
    key = await gateway.key(email="ada@example.com", team="payments")
    body = claude_code_body(SESSION, turns=2, size=20_000)
    headers = claude_code_headers(SESSION, key, repo="git@github.com:acme/payments.git")
    response = await gateway.client.post("/v1/messages?beta=true", json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.splitlines() if line.startswith("event:")]
    assert events[0] == "event: message_start"
    assert events[-1] == "event: message_stop"
    assert "event: ping" in events
    assert response.headers["request-id"].startswith("req_")
    [record] = await gateway.usage(1)
    assert record.developer == "ada@example.com"
    assert record.team == "payments"
    assert record.session_id == SESSION
    assert (record.repository, record.repository_source) == ("github.com/acme/payments", "header")
    assert (record.client, record.client_version) == ("claude-cli", "2.1.332")
    assert record.request_class == "main"
    assert record.model_requested == record.model_served == "claude-opus-5-5"
    assert record.streamed and record.status == 200 and record.stop_reason
    total_input = (
        record.input_tokens + record.cache_creation_input_tokens + record.cache_read_input_tokens
    )
    assert total_input > 1000  # the simulator may have cached this prompt for an earlier test
    assert record.output_tokens > 0
    assert record.upstream_request_id == response.headers["request-id"]
    assert record.ttfb_ms is not None and record.duration_ms >= record.ttfb_ms


async def test_prompt_cache_reads_show_in_usage(gateway: Gateway) -> None:
    key = await gateway.key()
    headers = claude_code_headers(SESSION, key)
    first = claude_code_body(SESSION, turns=2, size=40_000, seed=7)
    second = claude_code_body(SESSION, turns=3, size=40_000, seed=7)
    second["messages"][: len(first["messages"])] = first["messages"]
    for body in (first, second):
        response = await gateway.client.post("/v1/messages", json=body, headers=headers)
        assert response.status_code == 200
    one, two = await gateway.usage(2)
    assert one.cache_creation_input_tokens > 0
    assert two.cache_read_input_tokens > 0


async def test_non_streaming_and_count_tokens(gateway: Gateway) -> None:
    key = await gateway.key()
    response = await gateway.client.post(
        "/v1/messages", json=_small(stream=False), headers={"x-api-key": key}
    )
    assert response.status_code == 200
    assert response.json()["type"] == "message"
    counted = await gateway.client.post(
        "/v1/messages/count_tokens?beta=true",
        json={"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "hello"}]},
        headers={"x-api-key": key},
    )
    assert counted.status_code == 200
    assert counted.json()["input_tokens"] > 0
    message, count = await gateway.usage(2)
    assert message.output_tokens > 0 and not message.streamed
    assert count.endpoint == "/v1/messages/count_tokens"


async def test_models_pass_through_and_need_a_key(gateway: Gateway) -> None:
    response = await gateway.client.get("/v1/models?limit=1000")
    _anthropic_error(response, 401, "authentication_error")
    key = await gateway.key()
    response = await gateway.client.get("/v1/models?limit=1000", headers={"x-api-key": key})
    assert response.status_code == 200
    assert any("claude" in m["id"] for m in response.json()["data"])


@pytest.mark.parametrize(
    ("fault", "status", "error_type"),
    [
        ("rate_limit,retry_after=7", 429, "rate_limit_error"),
        ("overloaded", 529, "overloaded_error"),
        ("server_error", 500, "api_error"),
    ],
)
async def test_upstream_errors_pass_through_unchanged(
    gateway: Gateway, fault: str, status: int, error_type: str
) -> None:
    key = await gateway.key()
    response = await gateway.client.post(
        "/v1/messages", json=_small(), headers={"x-api-key": key, "x-sim-fault": fault}
    )
    _anthropic_error(response, status, error_type)
    assert response.headers["request-id"].startswith("req_")
    assert "x-gatehouse-request-id" in response.headers
    if status == 429:
        assert response.headers["retry-after"] == "7"
    [record] = await gateway.usage(1)
    assert (record.status, record.error_type) == (status, error_type)


async def test_mid_stream_error_is_relayed(gateway: Gateway) -> None:
    key = await gateway.key()
    response = await gateway.client.post(
        "/v1/messages", json=_small(), headers={"x-api-key": key, "x-sim-fault": "mid_stream_error"}
    )
    assert response.status_code == 200
    assert "event: error" in response.text
    [record] = await gateway.usage(1)
    assert record.error_type == "overloaded_error"


async def test_upstream_unreachable_is_502(settings) -> None:  # type: ignore[no-untyped-def]
    dead = dataclasses.replace(settings, upstream_url=f"http://127.0.0.1:{free_port()}")
    async with running_gateway(dead) as gw:
        key = await gw.key()
        response = await gw.client.post("/v1/messages", json=_small(), headers={"x-api-key": key})
        message = _anthropic_error(response, 502, "api_error")
        assert message.startswith("upstream unreachable")


async def test_upstream_timeout_is_504(settings) -> None:  # type: ignore[no-untyped-def]
    slow = dataclasses.replace(settings, upstream_header_timeout=0.3)
    async with running_gateway(slow) as gw:
        key = await gw.key()
        response = await gw.client.post(
            "/v1/messages",
            json=_small(),
            headers={"x-api-key": key, "x-sim-fault": "slow_first_byte,ms=3000"},
        )
        _anthropic_error(response, 504, "timeout_error")


async def test_health_and_readiness(gateway: Gateway) -> None:
    assert (await gateway.client.get("/healthz")).json() == {"status": "ok"}
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    assert ready.json()["status"] == "ready"


async def test_database_outage_degrades_but_keeps_serving(gateway: Gateway) -> None:
    key = await gateway.key()
    await gateway.db.close()  # the database goes away under a running gateway
    response = await gateway.client.post("/v1/messages", json=_small(), headers={"x-api-key": key})
    assert response.status_code == 200  # keys are in memory, usage goes to the spool
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["database"].startswith("unreachable")
    assert ready.json()["spool_backlog"] >= 1
    strict = await gateway.client.get("/readyz?strict=1")
    assert strict.status_code == 503


async def test_unknown_routes_and_methods_are_anthropic_shaped(gateway: Gateway) -> None:
    _anthropic_error(await gateway.client.get("/nope"), 404, "not_found_error")
    _anthropic_error(await gateway.client.delete("/healthz"), 405, "invalid_request_error")
    # Other /v1 methods and paths are the upstream's business, once authenticated.
    key = await gateway.key()
    answer = await gateway.client.get("/v1/messages", headers={"x-api-key": key})
    _anthropic_error(answer, 404, "not_found_error")
    assert answer.headers["request-id"].startswith("req_sim")


async def test_vertex_mode_is_served_as_messages(gateway: Gateway) -> None:
    key = await gateway.key()
    body = claude_code_body(SESSION, turns=1, size=5_000)
    del body["model"]
    body["anthropic_version"] = "vertex-2023-10-16"
    path = "/vertex/projects/p-1/locations/us-east5/publishers/anthropic/models/"
    headers = claude_code_headers(SESSION, key)
    response = await gateway.client.post(
        path + "claude-opus-5-5:streamRawPredict", json=body, headers=headers
    )
    assert response.status_code == 200
    assert "event: message_stop" in response.text
    unary = await gateway.client.post(
        path + "claude-opus-5-5:rawPredict", json={**body, "stream": False}, headers=headers
    )
    assert unary.json()["type"] == "message"
    stream, single = await gateway.usage(2)
    assert stream.endpoint.endswith(":streamRawPredict")
    assert (stream.model_requested, stream.session_id) == ("claude-opus-5-5", SESSION)
    assert stream.streamed and not single.streamed
    assert stream.output_tokens > 0


async def test_unapproved_model_and_rate_limit_refusals(settings) -> None:  # type: ignore[no-untyped-def]
    strict = dataclasses.replace(settings, approved_models="claude-sonnet-*", rate_limit="2/min")
    async with running_gateway(strict) as gw:
        key = await gw.key()
        headers = {"x-api-key": key}
        denied = await gw.client.post(
            "/v1/messages", json=_small(model="claude-opus-5-5"), headers=headers
        )
        assert "not approved" in _anthropic_error(denied, 403, "permission_error")
        assert denied.headers["x-should-retry"] == "false"
        # The veto also covers endpoints passed through, such as message batches.
        batch = {"requests": [{"custom_id": "a", "params": _small(model="claude-opus-5-5")}]}
        denied = await gw.client.post("/v1/messages/batches", json=batch, headers=headers)
        _anthropic_error(denied, 403, "permission_error")
        # Counting tokens is free: neither the model policy nor the rate limit applies.
        counted = await gw.client.post(
            "/v1/messages/count_tokens",
            json={"model": "claude-opus-5-5", "messages": [{"role": "user", "content": "x"}]},
            headers=headers,
        )
        assert counted.status_code == 200
        for _ in range(2):
            ok = await gw.client.post("/v1/messages", json=_small(), headers=headers)
            assert ok.status_code == 200
        limited = await gw.client.post("/v1/messages", json=_small(), headers=headers)
        assert "Rate limit" in _anthropic_error(limited, 429, "rate_limit_error")
        assert limited.headers["x-should-retry"] == "false"
        assert int(limited.headers["retry-after"]) >= 1
        records = await gw.usage(6)
        assert [r.status for r in records] == [403, 403, 200, 200, 200, 429]
