"""Decoding and validating a Messages API request body, with the API's messages."""

from __future__ import annotations

import gzip
import zlib
from typing import Any

import orjson

MAX_BODY_BYTES = 32 * 1024 * 1024  # the Messages API's request size limit


class InvalidRequest(Exception):
    """A body the real API would refuse with 400 invalid_request_error."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def decode_body(raw: bytes, content_encoding: bytes = b"") -> dict[str, Any]:
    """Parse the JSON body (gzip/deflate accepted, as a client may compress)."""
    if content_encoding:
        try:
            if content_encoding == b"gzip":
                raw = gzip.decompress(raw)
            elif content_encoding == b"deflate":
                raw = zlib.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise InvalidRequest(f"Request body could not be decompressed: {exc}") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("Request body must be a JSON object")
    return body


def validate(body: dict[str, Any], *, require_max_tokens: bool) -> None:
    """Check the fields the API requires; unknown fields are accepted and ignored."""
    model = body.get("model")
    if model is None:
        raise InvalidRequest("model: Field required")
    if not isinstance(model, str):
        raise InvalidRequest("model: Input should be a valid string")
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest("messages: Field required")
    if not isinstance(messages, list):
        raise InvalidRequest("messages: Input should be a valid list")
    if not messages:
        raise InvalidRequest("messages: at least one message is required")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages.{i}: Input should be a valid dictionary")
        if "role" not in message:
            raise InvalidRequest(f"messages.{i}.role: Field required")
        content = message.get("content")
        if content is None:
            raise InvalidRequest(f"messages.{i}.content: Field required")
        if not isinstance(content, str | list):
            raise InvalidRequest(f"messages.{i}.content: Input should be a valid list")
    if require_max_tokens:
        max_tokens = body.get("max_tokens")
        if max_tokens is None:
            raise InvalidRequest("max_tokens: Field required")
        if type(max_tokens) is not int:
            raise InvalidRequest("max_tokens: Input should be a valid integer")
        if max_tokens < 1:
            raise InvalidRequest("max_tokens: Input should be greater than or equal to 1")
