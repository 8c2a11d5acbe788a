"""The model catalogue served by ``GET /v1/models``, newest first like the API."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

# (id, display name, created_at)
MODELS: tuple[tuple[str, str, str], ...] = (
    ("claude-opus-5-5", "Claude Opus 5.5", "2026-09-15T00:00:00Z"),
    ("claude-sonnet-5-5", "Claude Sonnet 5.5", "2026-09-15T00:00:00Z"),
    ("claude-haiku-5-5", "Claude Haiku 5.5", "2026-09-15T00:00:00Z"),
    ("claude-opus-5", "Claude Opus 5", "2026-06-10T00:00:00Z"),
    ("claude-sonnet-5", "Claude Sonnet 5", "2026-06-10T00:00:00Z"),
    ("claude-opus-4-8", "Claude Opus 4.8", "2026-04-14T00:00:00Z"),
    ("claude-opus-4-7", "Claude Opus 4.7", "2026-02-24T00:00:00Z"),
    ("claude-opus-4-6", "Claude Opus 4.6", "2026-02-05T00:00:00Z"),
    ("claude-sonnet-4-6", "Claude Sonnet 4.6", "2026-02-17T00:00:00Z"),
    ("claude-opus-4-5", "Claude Opus 4.5", "2025-11-24T00:00:00Z"),
    ("claude-haiku-4-5", "Claude Haiku 4.5", "2025-10-15T00:00:00Z"),
    ("claude-sonnet-4-5", "Claude Sonnet 4.5", "2025-09-29T00:00:00Z"),
)
_BY_ID = {model[0]: model for model in MODELS}


def model_info(model_id: str) -> dict[str, Any] | None:
    """One model object, or None if the simulator does not list it."""
    model = _BY_ID.get(model_id)
    return None if model is None else _model_object(model)


def _model_object(model: tuple[str, str, str]) -> dict[str, Any]:
    return {"type": "model", "id": model[0], "display_name": model[1], "created_at": model[2]}


def model_list(query_string: bytes) -> dict[str, Any]:
    """A page of the catalogue; honours ``limit`` (1-1000, default 20) and ``after_id``."""
    query = parse_qs(query_string.decode("latin-1"))
    try:
        limit = int(query.get("limit", ["20"])[0])
    except ValueError:
        limit = 20
    limit = max(1, min(limit, 1000))
    ids = [model[0] for model in MODELS]
    start = 0
    after = query.get("after_id", [""])[0]
    before = query.get("before_id", [""])[0]
    if after in _BY_ID:
        start = ids.index(after) + 1
    end = ids.index(before) if before in _BY_ID else len(ids)
    page = [_model_object(model) for model in MODELS[start:end][:limit]]
    return {
        "data": page,
        "has_more": start + limit < end,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }
