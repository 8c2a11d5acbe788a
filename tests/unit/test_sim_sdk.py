"""The official ``anthropic`` SDK against the simulator over a real socket (uvicorn)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest
import uvicorn

from gatehouse.sim.app import create_sim_app

MODEL = "claude-opus-5-5"
SCENARIO = """
- marker: RUN_TOOL
  replies:
    - content:
        - {type: tool_use, name: Bash, input: {command: "echo hello-from-tool", timeout: 5}}
    - "The tool printed: {tool_result}"
"""


@pytest.fixture(scope="module")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    scenario: Path = tmp_path_factory.mktemp("sim") / "scenario.yaml"
    scenario.write_text(SCENARIO)
    app = create_sim_app(scenario, min_cacheable_tokens=16)
    # Bound and listening before the server starts: connections wait in the backlog,
    # so no test has to poll for readiness.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    config = uvicorn.Config(
        app, http="httptools", ws="none", lifespan="on", log_level="critical", loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@pytest.fixture
def client(sim_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=sim_url, api_key="dummy", max_retries=0) as client:
        yield client


def test_sdk_streams_text(client: anthropic.Anthropic) -> None:
    with client.messages.stream(
        model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "say hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == f"Hello from gatehouse sim. You are talking to {MODEL}."
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == (len(text) + 3) // 4
    assert final.usage.cache_creation is not None


def test_sdk_streams_tool_use_and_reads_the_tool_result(client: anthropic.Anthropic) -> None:
    question: anthropic.types.MessageParam = {"role": "user", "content": "RUN_TOOL please"}
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=[question]) as stream:
        first = stream.get_final_message()
    assert first.stop_reason == "tool_use"
    tool_use = first.content[0]
    assert isinstance(tool_use, anthropic.types.ToolUseBlock)
    assert (tool_use.name, tool_use.input) == (
        "Bash",
        {"command": "echo hello-from-tool", "timeout": 5},
    )
    second = client.messages.create(
        model=MODEL,
        max_tokens=1024,
        messages=[
            question,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_use.id,
                        "content": "hello-from-tool",
                    }
                ],
            },
        ],
    )
    assert second.content[0].type == "text"
    assert second.content[0].text == "The tool printed: hello-from-tool"


def test_sdk_count_tokens_models_and_errors(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "foo"}]
    )
    assert counted.input_tokens > 0
    assert MODEL in [model.id for model in client.models.list(limit=1000)]
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-sim-fault": "overloaded"},
        )
    assert raised.value.status_code == 529


def test_sdk_sees_a_mid_stream_error(client: anthropic.Anthropic) -> None:
    with (
        pytest.raises(anthropic.APIStatusError, match="Overloaded"),
        client.messages.stream(
            model=MODEL,
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-sim-fault": "mid_stream_error"},
        ) as stream,
    ):
        stream.get_final_message()


def test_a_dropped_stream_is_cut_mid_chunked_body(client: anthropic.Anthropic) -> None:
    # The SDK lets the transport's error through while iterating; what matters is that the
    # server aborted the connection instead of finishing the response.
    with (
        pytest.raises(Exception, match="incomplete chunked read"),
        client.messages.stream(
            model=MODEL,
            max_tokens=10,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"x-sim-fault": "drop"},
        ) as stream,
    ):
        stream.get_final_message()
