"""The one exception tree of Gatehouse.

    GatewayError                     (500, api_error)
     ├── InvalidRequest              (400, invalid_request_error)
     ├── AuthenticationFailed        (401, authentication_error)
     ├── PermissionDenied            (403, permission_error)
     ├── NotFound                    (404, not_found_error)
     ├── RequestTooLarge             (413, request_too_large)
     ├── RateLimited                 (429, rate_limit_error)
     ├── UpstreamUnreachable         (502, api_error)
     ├── UpstreamTimeout             (504, timeout_error)
     └── Unavailable                 (503, api_error)

Each subclass carries the HTTP status and the Anthropic ``error.type`` it is
rendered with, so the status is never chosen by matching message text.  Every
refusal Gatehouse itself makes is sent with ``x-should-retry: false``: without
it Claude Code retries a 401 or 403 for minutes before showing the message.
Upstream failures are the exception: whether those are worth retrying is the
client's call, so they carry no such header.

401 and 403 also carry ``retry-after`` over a minute.  Measured with Claude Code
2.1.332: with an ``apiKeyHelper`` it ignores ``x-should-retry`` on a 401 or 403
(the key may have rotated) and retries for about four minutes, re-running the
helper each time; a ``retry-after`` beyond 60 s cuts that to at most three
attempts about a second apart, which still lets a rotated key through.
"""

from __future__ import annotations

import orjson


class GatewayError(Exception):
    status = 500
    error_type = "api_error"
    should_retry: bool | None = False
    retry_after: int | None = None

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        if self.retry_after is not None:
            self.headers.setdefault("retry-after", str(self.retry_after))

    def body(self) -> bytes:
        return error_body(self.error_type, self.message)

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", b"application/json")]
        if self.should_retry is not None:
            headers.append((b"x-should-retry", b"true" if self.should_retry else b"false"))
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items())
        return headers


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = 401
    error_type = "authentication_error"
    retry_after = 3600


class PermissionDenied(GatewayError):
    status = 403
    error_type = "permission_error"
    retry_after = 3600


class NotFound(GatewayError):
    status = 404
    error_type = "not_found_error"


class RequestTooLarge(GatewayError):
    status = 413
    error_type = "request_too_large"


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limit_error"


class UpstreamUnreachable(GatewayError):
    status = 502
    error_type = "api_error"
    should_retry = None


class UpstreamTimeout(GatewayError):
    status = 504
    error_type = "timeout_error"
    should_retry = None


class Unavailable(GatewayError):
    status = 503
    error_type = "api_error"
    should_retry = None


def error_body(error_type: str, message: str) -> bytes:
    """The Anthropic error envelope: ``{"type":"error","error":{...}}``."""
    return orjson.dumps({"type": "error", "error": {"type": error_type, "message": message}})
