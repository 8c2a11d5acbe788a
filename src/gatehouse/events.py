"""Typed events: what happened that an operator may need to act on or investigate.

An event is a fact with a kind (``unknown_model_price``, ``budget_soft_alert``,
…), a one-line subject a person can read, who it concerns and a free-form
``detail``.  Events are written through the same durable spool as usage
records (`gatehouse.ledger.recorder.Recorder.event`), so an acknowledged event
survives ``kill -9`` and a database outage, and land in the ``events`` table.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "critical")


@dataclass(slots=True)
class Event:
    kind: str
    subject: str
    severity: str = "info"
    developer: str = ""
    team: str = ""
    repository: str = ""
    session_id: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ts: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})
