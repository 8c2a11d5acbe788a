"""Small ASGI helpers for the hot path: reading a bounded body, sending errors."""

from __future__ import annotations

import logging
import zlib
from collections.abc import Sequence

from starlette.types import Receive, Send

from gatehouse.errors import GatewayError, InvalidRequest, RequestTooLarge

RawHeaders = Sequence[tuple[bytes, bytes]]


class ClientGone(Exception):
    """The client hung up before its request body arrived."""


class ResponseAborted(Exception):
    """The upstream failed mid-body after headers went out: the connection must be cut.

    Raised out of the ASGI app on purpose (the server then closes the socket);
    `QuietAborts` keeps it out of the error log.
    """


class QuietAborts(logging.Filter):
    """A log filter for the server's error logger: deliberate aborts are not crashes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ResponseAborted))


def header_map(raw: RawHeaders) -> dict[str, str]:
    """Lower-case name → value (the last one wins); for decisions, not forwarding."""
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in raw}


async def read_body(receive: Receive, headers: dict[str, str], limit: int) -> bytes:
    """The whole request body, refused with 413 past ``limit`` bytes (before or after gunzip)."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise _too_large(size, limit)
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoding = headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "deflate"):
        return _inflate(body, encoding, limit)
    raise InvalidRequest(
        f"Content-Encoding {encoding!r} is not supported; send the body uncompressed or gzip"
    )


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidRequest(f"request body is not valid {encoding}: {exc}") from exc
    if len(out) > limit or inflater.unconsumed_tail:
        raise _too_large(len(out), limit)
    return out


def _too_large(size: int, limit: int) -> RequestTooLarge:
    return RequestTooLarge(
        f"request body is {size:,} bytes; this gateway accepts at most {limit:,} "
        "(GATEHOUSE_MAX_BODY_BYTES)"
    )


async def send_error(send: Send, error: GatewayError, extra: RawHeaders = ()) -> None:
    body = error.body()
    headers = [*error.response_headers(), (b"content-length", str(len(body)).encode()), *extra]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
