"""Reading untrusted JSON for decisions: a mapping, or nothing."""

from __future__ import annotations

from typing import Any

import orjson


def json_object(raw: bytes | str) -> dict[str, Any] | None:
    """``raw`` decoded when it is a JSON object; ``None`` for anything else, never raising."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None
