"""Unit tests of the simulator's pure parts: tokens, prompt cache, faults, scenarios."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gatehouse.sim.cache import PromptCache
from gatehouse.sim.faults import (
    FaultCounter,
    FaultSpecError,
    fault_in_prompt,
    parse_fault,
    session_of,
)
from gatehouse.sim.prompt import analyze, count_tokens
from gatehouse.sim.reply import TextBlock, ToolUseBlock
from gatehouse.sim.scenario import ScenarioError, load_scenario, parse_scenario
from gatehouse.sim.tokens import IMAGE_TOKENS, block_tokens, text_tokens

MODEL = "claude-opus-5-5"
SYSTEM_PROMPT = "You are an agent working with the user toward their goals. " * 60


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def cc(ttl: str | None = None) -> dict[str, str]:
    return {"type": "ephemeral", "ttl": ttl} if ttl else {"type": "ephemeral"}


def body(
    *texts: str, ttl: str | None = None, system_ttl: str | None = None, model: str = MODEL
) -> dict[str, Any]:
    """A Claude Code-shaped request: breakpoints on the system prompt and the last block."""
    messages: list[dict[str, Any]] = []
    for i, text in enumerate(texts):
        role = "user" if i % 2 == 0 else "assistant"
        messages.append({"role": role, "content": [{"type": "text", "text": text}]})
    messages[-1]["content"][-1]["cache_control"] = cc(ttl)
    return {
        "model": model,
        "max_tokens": 1000,
        "tools": [{"name": "Bash", "description": "Run a command", "input_schema": {}}],
        "system": [
            {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332;"},
            {"type": "text", "text": "You are a Claude agent.", "cache_control": cc(system_ttl)},
            {"type": "text", "text": SYSTEM_PROMPT, "cache_control": cc(system_ttl)},
        ],
        "messages": messages,
    }


def account(cache: PromptCache, request: dict[str, Any]) -> tuple[int, int, int, int]:
    usage = cache.account(analyze(request, request["model"]))
    total = count_tokens(request)
    assert (
        usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
        == total
    )
    return (
        usage.input_tokens,
        usage.cache_read_input_tokens,
        usage.ephemeral_5m_input_tokens,
        usage.ephemeral_1h_input_tokens,
    )


# -- tokens -------------------------------------------------------------------------------


def test_text_tokens_are_a_quarter_of_utf8_bytes_rounded_up() -> None:
    assert text_tokens("") == 0
    assert text_tokens("abcd") == 1
    assert text_tokens("abcde") == 2
    assert text_tokens("é" * 4) == 2  # 8 bytes


def test_block_tokens_cover_every_block_kind() -> None:
    image = {"type": "image", "source": {"type": "base64", "data": "A" * 100_000}}
    assert block_tokens(image) - block_tokens({"type": "image"}) == 0
    assert block_tokens(image) > IMAGE_TOKENS
    tool_use = {"type": "tool_use", "id": "t", "name": "Bash", "input": {"command": "ls"}}
    assert block_tokens(tool_use) > block_tokens({"type": "text", "text": ""})
    result = {"type": "tool_result", "tool_use_id": "t", "content": "x" * 400}
    assert block_tokens(result) == block_tokens({"type": "text", "text": "x" * 400})
    listed = {"type": "tool_result", "content": [{"type": "text", "text": "x" * 400}]}
    assert block_tokens(listed) > block_tokens(result)


def test_count_ignores_cache_control_and_deferred_tool_schemas() -> None:
    plain = {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text"}]}]}
    marked = orjson.loads(orjson.dumps(plain))
    marked["messages"][0]["content"][0]["cache_control"] = cc("1h")
    assert count_tokens(plain) == count_tokens(marked)
    deferred = {**plain, "tools": [{"name": "Big", "input_schema": {"x": "y" * 4000}}]}
    assert count_tokens(deferred) > count_tokens(plain) + 1000
    deferred["tools"][0]["defer_loading"] = True
    assert count_tokens(deferred) < count_tokens(plain) + 10


# -- prompt cache -------------------------------------------------------------------------


def test_second_identical_request_reads_what_the_first_wrote() -> None:
    cache = PromptCache(clock=FakeClock(), min_tokens=16)
    request = body("hello " * 50)
    prefix = analyze(request, MODEL).breakpoints[-1].tokens
    total = count_tokens(request)
    assert account(cache, request) == (total - prefix, 0, prefix, 0)
    assert account(cache, request) == (total - prefix, prefix, 0, 0)


def test_next_turn_reads_the_previous_turn_through_the_lookback_window() -> None:
    cache = PromptCache(clock=FakeClock(), min_tokens=16)
    first = body("question one " * 20)
    account(cache, first)
    written = analyze(first, MODEL).breakpoints[-1].tokens
    # Claude Code moves the breakpoint to the newest block: the old block loses its marker.
    second = body("question one " * 20, "answer one", "question two")
    last = analyze(second, MODEL).breakpoints[-1].tokens
    _, read, created_5m, _ = account(cache, second)
    assert (read, created_5m) == (written, last - written)


def test_prefix_keys_depend_on_the_model() -> None:
    cache = PromptCache(clock=FakeClock(), min_tokens=16)
    account(cache, body("hi " * 50))
    assert account(cache, body("hi " * 50, model="claude-sonnet-4-6"))[1] == 0


def test_five_minute_entries_expire_and_reads_refresh_them() -> None:
    clock = FakeClock()
    cache = PromptCache(clock=clock, min_tokens=16)
    request = body("hello " * 50)
    account(cache, request)
    clock.now += 200
    assert account(cache, request)[1] > 0  # a read at t+200 s refreshes the TTL...
    clock.now += 200
    assert account(cache, request)[1] > 0  # ...so it is still there at t+400 s
    clock.now += 301
    assert account(cache, request)[1] == 0


def test_one_hour_ttl_is_written_as_1h_and_outlives_five_minutes() -> None:
    clock = FakeClock()
    cache = PromptCache(clock=clock, min_tokens=16)
    request = body("hello " * 50, ttl="1h", system_ttl="1h")
    _, _, created_5m, created_1h = account(cache, request)
    assert created_5m == 0
    assert created_1h > 0
    clock.now += 1800
    assert account(cache, request)[1] == created_1h
    clock.now += 3601
    assert account(cache, request)[1] == 0


def test_writes_split_by_the_ttl_of_the_breakpoint_that_wrote_them() -> None:
    cache = PromptCache(clock=FakeClock(), min_tokens=16)
    request = body("hello " * 50, system_ttl="1h")
    breakpoints = analyze(request, MODEL).breakpoints
    _, _, created_5m, created_1h = account(cache, request)
    assert created_1h == breakpoints[-2].tokens  # tools + system, under 1h breakpoints
    assert created_5m == breakpoints[-1].tokens - breakpoints[-2].tokens


def test_prefixes_below_the_minimum_are_neither_written_nor_read() -> None:
    cache = PromptCache(clock=FakeClock(), min_tokens=100_000)
    request = body("hello")
    assert account(cache, request) == (count_tokens(request), 0, 0, 0)
    assert account(cache, request) == (count_tokens(request), 0, 0, 0)
    assert len(cache) == 0


def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = PromptCache(clock=FakeClock(), min_tokens=16, max_entries=3)
    for i in range(10):
        account(cache, body(f"conversation {i} " * 30))
    assert len(cache) == 3


block_strategy = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=300)),
    st.builds(
        lambda n, i: {"type": "tool_use", "id": "t", "name": n, "input": i},
        st.text(max_size=10),
        # Bodies come from orjson.loads, which never yields ints beyond 64 bits.
        st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1), max_size=3),
    ),
    st.just({"type": "image", "source": {"type": "base64", "data": "AAAA"}}),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.lists(block_strategy, min_size=1, max_size=4), st.booleans()),
        min_size=1,
        max_size=8,
    ),
    st.integers(min_value=0, max_value=600),
)
def test_usage_always_sums_to_the_counted_input(
    turns: list[tuple[list[dict[str, Any]], bool]], min_tokens: int
) -> None:
    messages = []
    for i, (blocks, marked) in enumerate(turns):
        if marked:
            blocks[-1] = {**blocks[-1], "cache_control": cc("1h" if i % 3 == 0 else None)}
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": blocks})
    request = {"model": MODEL, "messages": messages}
    cache = PromptCache(clock=FakeClock(), min_tokens=min_tokens)
    for _ in range(2):
        usage = account(cache, request)
        assert min(usage) >= 0
    assert count_tokens(request) == analyze(request, MODEL).total_tokens


# -- faults -------------------------------------------------------------------------------


def test_fault_spec_parsing() -> None:
    fault = parse_fault(" rate_limit, retry_after=7 ,times=2")
    assert (fault.name, fault.retry_after, fault.times) == ("rate_limit", 7, 2)
    assert fault.spec == "rate_limit,retry_after=7,times=2"
    assert parse_fault("stall").seconds == 3600.0
    assert parse_fault("slow_first_byte,ms=250").seconds == 0.25
    assert parse_fault("overloaded").times is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("explode", "unknown sim fault 'explode'"),
        ("overloaded,ms=5", "takes key=value options ['times']"),
        ("stall,ms", "got 'ms'"),
        ("stall,ms=soon", "must be an integer"),
        ("stall,ms=-1", "must not be negative"),
    ],
)
def test_bad_fault_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message.replace("[", r"\[")):
        parse_fault(spec)


def test_fault_marker_is_read_from_the_last_user_message_only() -> None:
    marked = {"role": "user", "content": "hi [[sim:fault=overloaded,times=2]] there"}
    assert fault_in_prompt([marked]) == "overloaded,times=2"
    tool_turn = {"role": "user", "content": [{"type": "tool_result", "content": "ok"}]}
    assert fault_in_prompt([marked, {"role": "assistant", "content": "x"}, tool_turn]) is None


def test_session_comes_from_the_header_or_metadata_user_id() -> None:
    as_json = orjson.dumps({"device_id": "d", "session_id": "s-json"}).decode()
    assert session_of("s-header", {"metadata": {"user_id": as_json}}) == "s-header"
    assert session_of(None, {"metadata": {"user_id": as_json}}) == "s-json"
    legacy = "user_abc_account__session_s-legacy"
    assert session_of(None, {"metadata": {"user_id": legacy}}) == "s-legacy"
    assert session_of(None, {"metadata": {"user_id": "anything"}}) == "anything"
    assert session_of(None, {}) == ""


def test_fault_counter_fires_the_first_n_times_per_session() -> None:
    counter = FaultCounter(max_keys=10)
    fault = parse_fault("overloaded,times=2")
    assert [counter.fires(fault, "a") for _ in range(3)] == [True, True, False]
    assert counter.fires(fault, "b")
    assert all(counter.fires(parse_fault("overloaded"), "a") for _ in range(5))


# -- scenario files -----------------------------------------------------------------------


def test_load_yaml_and_json_scenarios(tmp_path: Path) -> None:
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text(
        "- marker: RUN_TOOL\n"
        "  replies:\n"
        "    - content:\n"
        "        - {type: tool_use, name: Bash, input: {command: echo hi}}\n"
        "    - 'Tool said {tool_result}'\n"
    )
    scenario = load_scenario(yaml_file)
    (entry,) = scenario.entries
    assert entry.replies[0].content == (ToolUseBlock("Bash", {"command": "echo hi"}),)
    assert entry.replies[1].content == (TextBlock("Tool said {tool_result}"),)
    json_file = tmp_path / "s.json"
    json_file.write_bytes(
        orjson.dumps(
            {
                "default_output_tokens": 300,
                "scenarios": [
                    {"marker": "M", "replies": [{"content": "x", "stop_reason": "max_tokens"}]}
                ],
            }
        )
    )
    loaded = load_scenario(json_file)
    assert loaded.default_output_tokens == 300
    assert loaded.entries[0].replies[0].stop_reason == "max_tokens"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("just text", "expected a list"),
        ({"marker": "M"}, "unknown top-level key"),
        ([{"replies": ["x"]}], "entry 0: 'marker' must be a non-empty string"),
        ([{"marker": "M", "replies": []}], "'replies' must be a non-empty list"),
        ([{"marker": "M", "replies": [{"content": [{"type": "image"}]}]}], "unknown block type"),
        ([{"marker": "M", "replies": [{"content": [{"type": "tool_use"}]}]}], "'name'"),
        ([{"marker": "M", "replies": [{"content": "x", "stop_reason": "x"}]}], "stop_reason"),
        ({"scenarios": [], "extra": 1}, "unknown top-level key"),
    ],
)
def test_malformed_scenarios_raise_readable_errors(data: Any, message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        parse_scenario(data, source="demo.yaml")


def test_unreadable_scenario_files_raise_scenario_error(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario file"):
        load_scenario(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("- marker: [unclosed\n")
    with pytest.raises(ScenarioError, match="not valid YAML"):
        load_scenario(broken)
