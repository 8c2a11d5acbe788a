"""A client that hangs up cancels the upstream request, and what it used is still recorded."""

from __future__ import annotations

import socket
import time
import uuid

import orjson
import pytest

from tests.e2e.conftest import GatewayProcess

pytestmark = pytest.mark.e2e


def test_disconnect_mid_stream_cancels_upstream_and_records(
    gateway_process: GatewayProcess,
) -> None:
    key = gateway_process.new_key()
    session = str(uuid.uuid4())
    body = orjson.dumps(
        {
            "model": "claude-sonnet-4-6",
            "max_tokens": 100,
            "stream": True,
            "messages": [{"role": "user", "content": "hang up on me " + "x" * 4000}],
        }
    )
    request = (
        b"POST /v1/messages HTTP/1.1\r\nHost: gatehouse\r\nContent-Type: application/json\r\n"
        + f"x-api-key: {key}\r\nx-claude-code-session-id: {session}\r\n".encode()
        # The simulator sends message_start, then stays silent for ten minutes.
        + b"x-sim-fault: stall,ms=600000\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", gateway_process.port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while b"message_start" not in received:
            received += sock.recv(65536)
    hung_up = time.monotonic()

    deadline = hung_up + 10
    record = None
    while record is None and time.monotonic() < deadline:
        record = next((r for r in gateway_process.usage() if r["session_id"] == session), None)
    assert record is not None, "no usage record for the abandoned request"
    assert record["client_disconnected"] is True
    assert record["error_type"] == "client_disconnected"
    assert record["input_tokens"] > 1000  # message_start's usage was kept
    # Recorded when the client left, not when the stalled upstream would have ended.
    assert record["duration_ms"] < 10_000
