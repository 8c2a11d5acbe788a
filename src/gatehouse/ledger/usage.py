"""Usage records: one per request, success or failure."""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class UsageRecord:
    """What one request used, as finance and platform read it.

    Token counts follow the Messages API ``usage`` object: ``message_start``
    overlaid with the last ``message_delta`` (whose counts are cumulative).
    """

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: float = field(default_factory=time.time)
    key_id: str = ""
    developer: str = ""
    team: str = ""
    repository: str = ""
    repository_source: str = ""
    session_id: str = ""
    client: str = ""
    client_version: str = ""
    request_class: str = ""
    endpoint: str = ""
    model_requested: str = ""
    model_served: str = ""
    streamed: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0
    status: int = 0
    error_type: str = ""
    stop_reason: str = ""
    ttfb_ms: float | None = None
    duration_ms: float = 0.0
    upstream_request_id: str = ""
    client_disconnected: bool = False
    # As the API reports them: they change the price (inference_geo "us" is 1.1×).
    inference_geo: str = ""
    service_tier: str = ""
    speed: str = ""
    # Set by the meter before the record is spooled; None when the model has no price.
    cost_micros: int | None = None
    cost_centre: str = ""
    # The guardrails' verdict: clean | flagged | redacted | blocked | error; "" unscreened.
    guard: str = ""
    guard_findings: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UsageRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def apply_usage(self, usage: dict[str, Any]) -> None:
        """Overlay the non-null counts of a Messages API ``usage`` object."""
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ):
            value = usage.get(name)
            if isinstance(value, int):
                setattr(self, name, value)
        for name in ("inference_geo", "service_tier", "speed"):
            value = usage.get(name)
            if isinstance(value, str):
                setattr(self, name, value)
        creation = usage.get("cache_creation")
        if isinstance(creation, dict):
            five = creation.get("ephemeral_5m_input_tokens")
            hour = creation.get("ephemeral_1h_input_tokens")
            if isinstance(five, int):
                self.cache_creation_5m_tokens = five
            if isinstance(hour, int):
                self.cache_creation_1h_tokens = hour
