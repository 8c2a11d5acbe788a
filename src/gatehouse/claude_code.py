"""Facts of Claude Code's wire format, read by both the gateway and the simulator."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatehouse.payload import json_object

SESSION_HEADER = "x-claude-code-session-id"


def session_id(header_value: str | None, body: Mapping[str, Any]) -> str:
    """The Claude Code session of a request, or ``""``.

    ``X-Claude-Code-Session-Id`` when present; else ``metadata.user_id``, which
    is a JSON string with ``session_id`` since 2.1.90 and
    ``user_<hex>_account_<uuid>_session_<uuid>`` before.
    """
    if header_value:
        return header_value
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user_id, str):
        return ""
    if user_id.startswith("{"):
        parsed = json_object(user_id)
        if parsed is not None and isinstance(parsed.get("session_id"), str):
            return str(parsed["session_id"])
    _, legacy, session = user_id.rpartition("_session_")
    return session if legacy else ""
