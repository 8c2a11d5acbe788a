"""The official `anthropic` SDK, unmodified, through Gatehouse on a real socket."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import pytest

from tests.e2e.conftest import GatewayProcess

pytestmark = pytest.mark.e2e

MODEL = "claude-sonnet-4-6"


_OPEN: list[anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """Close every SDK client a test made, so no pooled socket outlives its test."""
    yield
    while _OPEN:
        _OPEN.pop().close()


def _client(gw: GatewayProcess, key: str, **kw: object) -> anthropic.Anthropic:
    client = anthropic.Anthropic(base_url=gw.url, auth_token=key, max_retries=0, **kw)  # type: ignore[arg-type]
    _OPEN.append(client)
    return client


def _usage_for(gw: GatewayProcess, count: int) -> list[dict[str, object]]:
    deadline = time.monotonic() + 10
    while True:
        records = gw.usage()
        if len(records) >= count or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def test_streaming_text(gateway_process: GatewayProcess) -> None:
    client = _client(gateway_process, gateway_process.new_key())
    with client.messages.stream(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "say hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text
    assert final.usage.output_tokens > 0
    [record] = _usage_for(gateway_process, 1)
    assert record["model"] == MODEL
    assert record["output_tokens"] == final.usage.output_tokens
    assert record["input_tokens"] == final.usage.input_tokens


def test_streaming_tool_use_reassembles_input(gateway_process: GatewayProcess) -> None:
    client = _client(gateway_process, gateway_process.new_key())
    tools = [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}]
    with client.messages.stream(
        model=MODEL,
        max_tokens=200,
        tools=tools,  # type: ignore[arg-type]
        messages=[{"role": "user", "content": "WEATHER_TOOL in Paris?"}],
    ) as stream:
        final = stream.get_final_message()
    [tool_use] = [b for b in final.content if b.type == "tool_use"]
    assert tool_use.name == "get_weather"
    assert tool_use.input == {"city": "Paris", "units": {"kind": "metric", "digits": [1, 2]}}
    assert final.stop_reason == "tool_use"


def test_non_streaming_and_count_tokens(gateway_process: GatewayProcess) -> None:
    client = _client(gateway_process, gateway_process.new_key())
    message = client.messages.create(
        model=MODEL, max_tokens=100, messages=[{"role": "user", "content": "hello there"}]
    )
    assert message.content[0].type == "text"
    counted = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "hello there"}]
    )
    assert counted.input_tokens == message.usage.input_tokens


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("rate_limit", anthropic.RateLimitError),
        ("overloaded", anthropic.OverloadedError),
        ("server_error", anthropic.InternalServerError),
    ],
)
def test_upstream_faults_surface_as_sdk_exceptions(
    gateway_process: GatewayProcess, fault: str, error: type[Exception]
) -> None:
    client = _client(
        gateway_process, gateway_process.new_key(), default_headers={"x-sim-fault": fault}
    )
    with pytest.raises(error):
        client.messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}]
        )


def test_mid_stream_error_and_dropped_connection(gateway_process: GatewayProcess) -> None:
    key = gateway_process.new_key()
    for fault in ("mid_stream_error", "drop"):
        client = _client(gateway_process, key, default_headers={"x-sim-fault": fault})
        with (
            pytest.raises(anthropic.APIStatusError),
            client.messages.stream(
                model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}]
            ) as stream,
        ):
            stream.get_final_message()


def test_slow_upstream_surfaces_as_client_timeout(gateway_process: GatewayProcess) -> None:
    client = _client(
        gateway_process,
        gateway_process.new_key(),
        default_headers={"x-sim-fault": "slow_first_byte,ms=3000"},
        timeout=0.5,
    )
    with pytest.raises(anthropic.APITimeoutError):
        client.messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}]
        )


def test_refusals_surface_as_sdk_exceptions(gateway_process: GatewayProcess) -> None:
    with pytest.raises(anthropic.AuthenticationError) as refused:
        _client(gateway_process, "ghk_nope").messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(anthropic.BadRequestError):
        _client(gateway_process, gateway_process.new_key()).post(
            "/v1/messages", body={"model": MODEL}, cast_to=object
        )


def test_truncated_non_streaming_answer_is_an_error_not_a_short_answer(
    gateway_process: GatewayProcess,
) -> None:
    client = _client(
        gateway_process, gateway_process.new_key(), default_headers={"x-sim-fault": "drop"}
    )
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(
            model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "x"}]
        )
