import itertools

from hypothesis import given
from hypothesis import strategies as st

from gatehouse.ledger.usage import UsageRecord
from gatehouse.proxy.sse import UsageTee, apply_json_response

STREAM = (
    b"event: message_start\n"
    b'data: {"type":"message_start","message":{"model":"claude-opus-5-5","usage":'
    b'{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":900,'
    b'"cache_creation":{"ephemeral_5m_input_tokens":40,"ephemeral_1h_input_tokens":60},'
    b'"output_tokens":1}}}\n\n'
    b"event: content_block_start\n"
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    b'event: ping\ndata: {"type":"ping"}\n\n'
    b"event: content_block_delta\n"
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b"event: message_delta\n"
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
    b'"usage":{"output_tokens":7}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
)


def _check(record: UsageRecord) -> None:
    assert record.model_served == "claude-opus-5-5"
    assert record.input_tokens == 12
    assert record.output_tokens == 7
    assert record.cache_creation_input_tokens == 100
    assert record.cache_read_input_tokens == 900
    assert (record.cache_creation_5m_tokens, record.cache_creation_1h_tokens) == (40, 60)
    assert record.stop_reason == "end_turn"


def test_whole_stream_in_one_chunk() -> None:
    record = UsageRecord()
    tee = UsageTee(record)
    assert tee.feed(STREAM)
    _check(record)


@given(st.lists(st.integers(min_value=1, max_value=len(STREAM) - 1), max_size=30))
def test_any_chunking_gives_the_same_usage(cuts: list[int]) -> None:
    record = UsageRecord()
    tee = UsageTee(record)
    points = [0, *sorted(set(cuts)), len(STREAM)]
    finished = [tee.feed(STREAM[a:b]) for a, b in itertools.pairwise(points)]
    assert finished[-1] and not any(finished[:-1])
    _check(record)


def test_crlf_streams() -> None:
    record = UsageRecord()
    assert UsageTee(record).feed(STREAM.replace(b"\n", b"\r\n"))
    _check(record)


def test_error_event_recorded() -> None:
    record = UsageRecord()
    tee = UsageTee(record)
    tee.feed(
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    assert tee.errored and record.error_type == "overloaded_error" and not tee.finished


def test_garbage_is_ignored() -> None:
    record = UsageRecord()
    tee = UsageTee(record)
    assert not tee.feed(b"event: message_delta\ndata: {nope\n\n: comment\n\nrandom bytes")
    assert record.output_tokens == 0


def test_json_response() -> None:
    record = UsageRecord()
    apply_json_response(
        record,
        b'{"type":"message","model":"m","stop_reason":"tool_use",'
        b'"usage":{"input_tokens":3,"output_tokens":4}}',
    )
    assert (record.model_served, record.input_tokens, record.output_tokens) == ("m", 3, 4)
    assert record.stop_reason == "tool_use"
    error = UsageRecord()
    apply_json_response(error, b'{"type":"error","error":{"type":"rate_limit_error"}}')
    assert error.error_type == "rate_limit_error"
