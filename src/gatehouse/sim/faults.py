"""Fault injection: which failure a request asked for, and whether it fires.

A fault is requested with the ``x-sim-fault`` header or, so that the real Claude
Code CLI can trigger one from a prompt, with a marker in the text of the last
user message: ``[[sim:fault=overloaded,times=2]]``. The spec is
``NAME[,key=value...]``; ``times=N`` makes it fire only for the first N matching
requests of a session, so a client's retries eventually succeed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gatehouse import claude_code
from gatehouse.sim.scenario import user_texts

# name -> (HTTP status, error.type, error.message) for faults answered with an error status.
STATUS_FAULTS: Mapping[str, tuple[int, str, str]] = {
    "rate_limit": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit (gatehouse sim).",
    ),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "server_error": (500, "api_error", "Internal server error"),
}
STREAM_FAULTS = frozenset({"mid_stream_error", "slow_first_byte", "stall", "drop"})
DEFAULT_MS = {"slow_first_byte": 1_000, "stall": 3_600_000}
_OPTIONS: Mapping[str, frozenset[str]] = {
    "rate_limit": frozenset({"times", "retry_after"}),
    "slow_first_byte": frozenset({"times", "ms"}),
    "stall": frozenset({"times", "ms"}),
}
_MARKER = re.compile(r"\[\[sim:fault=([^\]]*)\]\]")


class FaultSpecError(Exception):
    """A fault spec the simulator does not understand (answered with a 400)."""


@dataclass(frozen=True, slots=True)
class Fault:
    """A parsed fault; ``spec`` is its normalised text, the key ``times=N`` counts under."""

    name: str
    spec: str
    times: int | None = None
    ms: int = 0
    retry_after: int = 1

    @property
    def seconds(self) -> float:
        return self.ms / 1000.0


def parse_fault(spec: str) -> Fault:
    """Parse ``NAME[,key=value...]``; raise FaultSpecError with a readable message."""
    name, *pairs = [part.strip() for part in spec.strip().split(",")]
    if name not in STATUS_FAULTS and name not in STREAM_FAULTS:
        known = ", ".join(sorted([*STATUS_FAULTS, *STREAM_FAULTS]))
        raise FaultSpecError(f"unknown sim fault {name!r}; known faults: {known}")
    allowed = _OPTIONS.get(name, frozenset({"times"}))
    options: dict[str, int] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or key not in allowed:
            raise FaultSpecError(
                f"sim fault {name!r} takes key=value options {sorted(allowed)}, got {pair!r}"
            )
        try:
            number = int(value)
        except ValueError:
            raise FaultSpecError(f"sim fault option {key!r} must be an integer") from None
        if number < 0:
            raise FaultSpecError(f"sim fault option {key!r} must not be negative")
        options[key] = number
    return Fault(
        name=name,
        spec=",".join([name, *(f"{k}={v}" for k, v in sorted(options.items()))]),
        times=options.get("times"),
        ms=options.get("ms", DEFAULT_MS.get(name, 0)),
        retry_after=options.get("retry_after", 1),
    )


def fault_in_prompt(messages: list[Any]) -> str | None:
    """The fault spec of a ``[[sim:fault=...]]`` marker in the last user message."""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            for text in user_texts(message):
                if "[[sim:" in text:
                    found = _MARKER.search(text)
                    if found:
                        return found.group(1)
            return None
    return None


def session_of(header_value: str | None, body: dict[str, Any]) -> str:
    """The session a request belongs to; failing that, whatever ``metadata.user_id`` says."""
    session = claude_code.session_id(header_value, body)
    if session:
        return session
    metadata = body.get("metadata")
    user_id = metadata.get("user_id") if isinstance(metadata, dict) else None
    return user_id if isinstance(user_id, str) else ""


class FaultCounter:
    """Counts requests per (fault spec, session) to apply ``times=N``; bounded in size."""

    def __init__(self, max_keys: int = 10_000) -> None:
        self._max_keys = max_keys
        self._seen: dict[tuple[str, str], int] = {}

    def fires(self, fault: Fault, session: str) -> bool:
        """Count this request; True if the fault applies to it."""
        if fault.times is None:
            return True
        key = (fault.spec, session)
        count = self._seen.pop(key, 0) + 1
        self._seen[key] = count  # re-inserted last: the dict's order is its recency
        if len(self._seen) > self._max_keys:
            del self._seen[next(iter(self._seen))]
        return count <= fault.times


class SimulatedDrop(Exception):
    """Raised by the app, after a partial body, to make the server abort the connection."""
