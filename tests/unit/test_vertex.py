import orjson
import pytest

from gatehouse.errors import InvalidRequest, NotFound
from gatehouse.proxy.vertex import translate

BODY = {
    "anthropic_version": "vertex-2023-10-16",
    "messages": [{"role": "user", "content": "hi"}],
    "max_tokens": 10,
    "stream": True,
    "future": {"kept": True},
}


def test_stream_raw_predict_becomes_a_streaming_messages_call() -> None:
    call = translate("claude-opus-5-5:streamRawPredict", dict(BODY))
    assert call.target == "/v1/messages"
    body = orjson.loads(call.body)
    assert body["model"] == "claude-opus-5-5"
    assert body["stream"] is True
    assert "anthropic_version" not in body
    assert body["future"] == {"kept": True}


def test_raw_predict_is_not_streamed() -> None:
    body = orjson.loads(translate("claude-haiku-4-5:rawPredict", dict(BODY)).body)
    assert "stream" not in body


def test_count_tokens() -> None:
    call = translate("count-tokens:rawPredict", {**BODY, "model": "claude-opus-5-5"})
    assert call.target == "/v1/messages/count_tokens"


@pytest.mark.parametrize("target", ["claude-opus-5-5:predict", "claude-opus-5-5"])
def test_unknown_methods(target: str) -> None:
    with pytest.raises(NotFound, match="streamRawPredict"):
        translate(target, dict(BODY))


def test_messages_required() -> None:
    with pytest.raises(InvalidRequest, match="messages"):
        translate("claude-opus-5-5:rawPredict", {"anthropic_version": "v"})
