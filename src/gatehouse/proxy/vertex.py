"""Claude Code's Vertex AI mode, served as the Messages API.

With ``CLAUDE_CODE_USE_VERTEX=1`` and ``ANTHROPIC_VERTEX_BASE_URL`` pointed at
Gatehouse, Claude Code posts to
``…/projects/{p}/locations/{l}/publishers/anthropic/models/{model}:streamRawPredict``
(or ``:rawPredict``) a Messages body without ``model`` and with
``anthropic_version: "vertex-2023-10-16"``.  Gatehouse turns that into a
``/v1/messages`` request for its Anthropic-compatible upstream; the response
format is the same, so it is relayed unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from gatehouse.errors import InvalidRequest, NotFound

ANTHROPIC_VERSION = "2023-06-01"
STREAM = "streamRawPredict"
UNARY = "rawPredict"


@dataclass(frozen=True, slots=True)
class VertexCall:
    target: str  # upstream path
    body: bytes
    parsed: dict[str, Any]


def translate(model_and_action: str, parsed: dict[str, Any]) -> VertexCall:
    """``claude-opus-5-5:streamRawPredict`` + body → the equivalent Messages API call."""
    model, sep, action = model_and_action.rpartition(":")
    if not sep or action not in (STREAM, UNARY):
        raise NotFound(
            f"unsupported Vertex method {model_and_action!r}: use :streamRawPredict or :rawPredict"
        )
    out = {k: v for k, v in parsed.items() if k != "anthropic_version"}
    if model == "count-tokens":
        if not isinstance(out.get("model"), str):
            raise InvalidRequest("`model` is required in a Vertex count-tokens request")
        return VertexCall("/v1/messages/count_tokens", orjson.dumps(out), out)
    if not isinstance(out.get("messages"), list):
        raise InvalidRequest("`messages` is required and must be a list of message objects")
    out["model"] = model
    if action == STREAM:
        out["stream"] = True
    else:
        out.pop("stream", None)
    return VertexCall("/v1/messages", orjson.dumps(out), out)
