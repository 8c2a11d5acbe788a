"""The audit capture: response reassembly and spool entries that grow with unique content."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gatehouse.audit.capture import AuditCapture, ResponseAssembler, apply_thinking
from gatehouse.content import blocks, make_block


def sse(*events: dict[str, Any], crlf: bool = False) -> bytes:
    out = b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )
    return out.replace(b"\n", b"\r\n") if crlf else out


def stream(thinking: str = "Let me look.", text: str = "Reading it.") -> bytes:
    return sse(
        {"type": "message_start", "message": {"id": "msg_1", "content": [], "usage": {}}},
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": thinking[:5]},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": thinking[5:]},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "sig=="},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": text[:4]},
        },
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "text_delta", "text": text[4:]},
        },
        {"type": "content_block_stop", "index": 1},
        {
            "type": "content_block_start",
            "index": 2,
            "content_block": {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": '{"file_pa'},
        },
        {
            "type": "content_block_delta",
            "index": 2,
            "delta": {"type": "input_json_delta", "partial_json": 'th": "/src/a.py"}'},
        },
        {"type": "content_block_stop", "index": 2},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    )


def assemble(data: bytes, size: int) -> ResponseAssembler:
    assembler = ResponseAssembler()
    for i in range(0, len(data), size):
        assembler.feed(data[i : i + size])
    return assembler


@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_the_stream_is_reassembled_whatever_the_chunking(size: int) -> None:
    got = [b.value for b in assemble(stream(), size).blocks()]
    assert got == [
        {"type": "thinking", "thinking": "Let me look.", "signature": "sig=="},
        {"type": "text", "text": "Reading it."},
        {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/src/a.py"}},
    ]
    assert [b.path for b in assemble(stream(), size).blocks()] == [
        "response[0]",
        "response[1]",
        "response[2]",
    ]


def test_crlf_streams_and_json_bodies_reassemble_the_same() -> None:
    lf = [b.digest for b in assemble(stream(), 5).blocks()]
    crlf = [b.digest for b in assemble(stream().replace(b"\n", b"\r\n"), 5).blocks()]
    assert crlf == lf
    body = {"content": [b.value for b in assemble(stream(), 5).blocks()], "role": "assistant"}
    assembler = ResponseAssembler()
    assembler.feed_json(orjson.dumps(body))
    assert [b.digest for b in assembler.blocks()] == lf


def test_a_stream_cut_mid_tool_input_keeps_what_arrived() -> None:
    data = stream()
    cut = data.index(b'th\\": \\"/src')
    got = assemble(data[:cut], 3).blocks()[-1].value
    assert got["input"] == {"_partial_json": '{"file_pa'}


def test_thinking_is_kept_hashed_or_dropped() -> None:
    thinking = assemble(stream(), 50).blocks()[0]
    assert apply_thinking(thinking, "keep") == thinking
    stub = apply_thinking(thinking, "hash")
    assert stub is not None
    assert stub.value == {
        "type": "thinking_digest",
        "digest": thinking.digest,
        "size": len(thinking.raw),
    }
    assert b"Let me look" not in stub.raw
    assert apply_thinking(thinking, "drop") is None
    text = make_block("response[1]", "assistant", "hello")
    assert apply_thinking(text, "drop") == text


def turn_request(n: int, *, plan: str = "private plan") -> dict[str, Any]:
    """Turn ``n`` of a session: the whole history again, the cache breakpoint on its last block."""
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "Fix the bug."}]}
    ]
    for i in range(1, n):
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": f"{plan} {i}", "signature": "s"},
                    {
                        "type": "tool_use",
                        "id": f"t{i}",
                        "name": "Read",
                        "input": {"file_path": f"/f{i}"},
                    },
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"t{i}", "content": f"file {i} " * 50}
                ],
            }
        )
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1000,
        "system": [
            {
                "type": "text",
                "text": "You are Claude Code. " * 100,
                "cache_control": {"type": "ephemeral"},
            }
        ],
        "tools": [
            {
                "name": "Read",
                "description": "Reads a file. " * 40,
                "input_schema": {"type": "object"},
            }
        ],
        "messages": messages,
        "stream": True,
    }


def entry(capture: AuditCapture, n: int, **kw: Any) -> dict[str, Any]:
    return capture.entry(
        request_id=f"gh_{n}",
        ts=1_700_000_000.0 + n,
        parsed=turn_request(n),
        developer="dev@example.com",
        session_id="sess-1",
        headers={
            "User-Agent": "claude-cli/2.1",
            "Authorization": "Bearer sk-secret",
            "x-api-key": "k",
        },
        **kw,
    )


def test_each_turn_is_its_base_plus_a_tail_and_only_new_contents() -> None:
    capture = AuditCapture()
    sent: dict[str, str] = {}
    for n in range(1, 6):
        e = entry(capture, n)
        assert not set(e["blocks"]) & set(sent), "a block's content was spooled twice"
        sent |= {d: c[1] for d, c in e["blocks"].items()}
        if n > 1:
            assert e["base_id"] == f"gh_{n - 1}"
            # The new assistant and user blocks; the block whose cache_control moved
            # away is still the same block, in the base.
            assert len(e["tail"]) == 3
        capture.spooled(e)
        every = [b.digest for b in blocks(turn_request(n))]
        assert set(every) <= set(sent)
        assert e["request_len"] == len(every)
    assert "cache_control" not in "".join(sent.values())


def test_the_envelope_keeps_parameters_and_safe_headers_only() -> None:
    e = entry(AuditCapture(), 1, model="claude-sonnet-4-5", status=200, decision="allowed")
    assert e["kind"] == "audit"
    assert e["params"] == {"model": "claude-sonnet-4-5", "max_tokens": 1000, "stream": True}
    assert e["headers"] == {"user-agent": "claude-cli/2.1"}
    assert "sk-secret" not in orjson.dumps(e).decode()
    assert e["chain"] == "sess-1"


def test_an_entry_never_reported_spooled_is_not_leaned_on() -> None:
    capture = AuditCapture()
    first = entry(capture, 1)
    second = entry(capture, 2)  # the first never reached the spool
    assert second["base_id"] is None
    assert set(first["blocks"]) <= set(second["blocks"])


def test_requests_without_a_session_chain_under_their_developer() -> None:
    e = AuditCapture().entry(request_id="gh_x", ts=1.0, parsed=turn_request(1), developer="a@b.c")
    assert e["chain"] == "dev:a@b.c"


def test_thinking_policy_applies_to_history_and_response() -> None:
    response = assemble(stream(thinking="secret reasoning"), 100).blocks()
    for policy, present in (("keep", True), ("hash", False), ("drop", False)):
        e = AuditCapture(thinking=policy).entry(
            request_id="gh_1", ts=1.0, parsed=turn_request(3), response=response, developer="d"
        )
        text = orjson.dumps(e["blocks"]).decode()
        assert ("private plan" in text) is present
        assert ("secret reasoning" in text) is present
        kinds = {c[0] for c in e["blocks"].values()}
        assert ("thinking_digest" in kinds) is (policy == "hash")
    with pytest.raises(ValueError, match="thinking"):
        AuditCapture(thinking="maybe")


def test_memory_stays_bounded() -> None:
    capture = AuditCapture(sessions=3, remembered_blocks=10)
    for n in range(20):
        e = capture.entry(
            request_id=f"gh_{n}",
            ts=1.0,
            parsed=turn_request(2, plan=f"plan {n}"),
            developer="d",
            session_id=f"s{n}",
        )
        capture.spooled(e)
    assert len(capture._sessions) == 3
    assert len(capture._sent) == 10
