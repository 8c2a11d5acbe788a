"""The meter: every usage record leaves the gateway with its cost and cost centre.

`Meter.price` runs in the request's record step, just before the record is
spooled, so what lands in the ledger is already priced with the table in force
when the request was served.  It is pure (no I/O): the caller writes the event
it may return.

Rules:

- A record with no tokens costs 0 whatever its model: nothing was billed.
- A model the price table does not know gives ``cost_micros = None`` (unknown,
  never zero) and, the first time this process meets it, an
  ``unknown_model_price`` event so finance hears about it.
- The cost centre comes from a mapping file (developer, else team, else the
  file's default); the identity source may supply it later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from gatehouse.events import Event
from gatehouse.ledger.cost import cost_of
from gatehouse.ledger.prices import PriceTable
from gatehouse.ledger.usage import UsageRecord
from gatehouse.settings import SettingsError

UNKNOWN_MODEL_PRICE = "unknown_model_price"
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class CostCentres:
    """Which cost centre a developer's spend is charged to."""

    developers: Mapping[str, str] = field(default_factory=dict)
    teams: Mapping[str, str] = field(default_factory=dict)
    default: str = ""

    def of(self, developer: str, team: str) -> str:
        return (
            self.developers.get(developer.lower()) or self.teams.get(team.lower()) or self.default
        )

    @classmethod
    def load(cls, path: Path | None) -> CostCentres:
        """Read a mapping file::

        default: CC-0000
        teams: {payments: CC-1042}
        developers: {alice@example.com: CC-2001}
        """
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"cost centre file {path}: cannot read it: {exc}") from exc
        if not isinstance(data, dict) or set(data) - {"default", "teams", "developers"}:
            raise SettingsError(
                f"cost centre file {path}: expected a mapping with `default`, `teams` "
                "and `developers`"
            )
        return cls(
            developers=_mapping(data.get("developers"), path, "developers"),
            teams=_mapping(data.get("teams"), path, "teams"),
            default=str(data.get("default") or ""),
        )


def _mapping(raw: Any, path: Path, name: str) -> Mapping[str, str]:
    if raw is None:
        return _EMPTY
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int) for k, v in raw.items()
    ):
        raise SettingsError(f"cost centre file {path}: `{name}` must map names to cost centres")
    return MappingProxyType({k.lower(): str(v) for k, v in raw.items()})


@dataclass
class Meter:
    prices: PriceTable
    cost_centres: CostCentres = field(default_factory=CostCentres)
    _unpriced: set[str] = field(default_factory=set)

    def price(self, record: UsageRecord) -> Event | None:
        """Set the record's cost and cost centre; an event the first time a model is unpriced."""
        record.cost_centre = self.cost_centres.of(record.developer, record.team)
        if not _tokens(record):
            record.cost_micros = 0
            return None
        cost = cost_of(record, self.prices, inference_geo=record.inference_geo)
        record.cost_micros = cost.micros
        if cost.micros is not None or cost.model in self._unpriced:
            return None
        self._unpriced.add(cost.model)
        return Event(
            kind=UNKNOWN_MODEL_PRICE,
            severity="warning",
            subject=(
                f"model {cost.model!r} has no price: its usage is recorded with cost unknown "
                "until the price table names it (GATEHOUSE_PRICE_FILE)"
            ),
            developer=record.developer,
            team=record.team,
            repository=record.repository,
            session_id=record.session_id,
            detail={"model": cost.model, "usage_record": record.id},
        )


def _tokens(record: UsageRecord) -> int:
    return (
        record.input_tokens
        + record.output_tokens
        + record.cache_creation_input_tokens
        + record.cache_read_input_tokens
    )
