"""A tee over a relayed SSE stream: it reads usage without touching the bytes.

The relay hands every chunk to `UsageTee.feed` *and* to the client unchanged.
Only ``message_start``, ``message_delta`` and ``error`` events are decoded;
the content deltas that make up most of a stream are skipped by their name.
"""

from __future__ import annotations

from gatehouse.ledger.usage import UsageRecord
from gatehouse.payload import json_object

_WANTED = (b"message_start", b"message_delta", b"message_stop", b"error")


class UsageTee:
    def __init__(self, record: UsageRecord) -> None:
        self._record = record
        self._buffer = b""
        self._separator = b""
        self.finished = False
        self.errored = False

    def feed(self, chunk: bytes) -> bool:
        """Consume one chunk; True once the stream's ``message_stop`` has been seen."""
        buffer = self._buffer + chunk if self._buffer else chunk
        if not self._separator:
            # The upstream picks one line ending for the whole stream; learn it once.
            if b"\r\n" in buffer:
                self._separator = b"\r\n\r\n"
            elif b"\n" in buffer:
                self._separator = b"\n\n"
            else:
                self._buffer = buffer
                return self.finished
        separator = self._separator
        start = 0
        while True:
            end = buffer.find(separator, start)
            if end < 0:
                break
            self._event(buffer[start:end])
            start = end + len(separator)
        self._buffer = buffer[start:]
        return self.finished

    def _event(self, raw: bytes) -> None:
        name = b""
        data = b""
        for line in raw.splitlines():
            if line.startswith(b"event:"):
                name = line[6:].strip()
                if name not in _WANTED:
                    return
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        if not name or name not in _WANTED:
            return
        if name == b"message_stop":
            self.finished = True
            return
        event = json_object(data)
        if event is None:
            return
        record = self._record
        if name == b"message_start":
            message = event.get("message") or {}
            if isinstance(message.get("model"), str):
                record.model_served = message["model"]
            if isinstance(message.get("usage"), dict):
                record.apply_usage(message["usage"])
        elif name == b"message_delta":
            if isinstance(event.get("usage"), dict):
                record.apply_usage(event["usage"])
            delta = event.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
                record.stop_reason = delta["stop_reason"]
        elif name == b"error":
            error = event.get("error")
            self.errored = True
            if isinstance(error, dict) and isinstance(error.get("type"), str):
                record.error_type = error["type"]
            else:
                record.error_type = "stream_error"


def apply_json_response(record: UsageRecord, body: bytes) -> None:
    """Usage, model and stop reason (or error type) from a non-streaming JSON body."""
    data = json_object(body)
    if data is None:
        return
    if data.get("type") == "error":
        error = data.get("error")
        if isinstance(error, dict) and isinstance(error.get("type"), str):
            record.error_type = error["type"]
        return
    if isinstance(data.get("model"), str):
        record.model_served = data["model"]
    if isinstance(data.get("usage"), dict):
        record.apply_usage(data["usage"])
    if isinstance(data.get("stop_reason"), str):
        record.stop_reason = data["stop_reason"]
