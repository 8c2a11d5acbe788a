"""The price table: what a model's tokens cost, as dated data.

The table ships as ``prices.yaml`` next to this module (Claude list prices); an
operator's file of the same shape overrides or extends it.  Loading happens at
start-up and validates everything, so a malformed file is a `SettingsError`
naming the model and the field, never a wrong bill later.  `PriceTable.lookup`
is pure and allocation-light: it is safe on any path.

Rates are USD per million tokens, held as exact `Decimal`.  At that unit one
token costs ``rate`` micro-dollars, which is what `gatehouse.ledger.cost` uses.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from gatehouse.settings import SettingsError

RATE_FIELDS = ("input", "output", "cache_write_5m", "cache_write_1h", "cache_read")
_VERSION_FIELDS = {"effective_from", "tiers", "inference_geo", *RATE_FIELDS}
_TIER_FIELDS = {"above_prompt_tokens", *RATE_FIELDS}
_MODEL_FIELDS = {"aliases", "prices"}

# Bedrock: optional cross-region prefix ("us.", "eu.", "global."), "anthropic.",
# the Anthropic id, optional version suffix ("-v1:0").  Vertex: "<name>@<date>".
_BEDROCK = re.compile(r"^(?:[a-z]{2,6}\.)?anthropic\.(?P<id>.+?)(?:-v\d+(?::\d+)?)?$")
_VERTEX = re.compile(r"^(?P<id>[^@]+)@(?P<date>\d{8})$")


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per million tokens for each kind of token in a request."""

    input: Decimal
    output: Decimal
    cache_write_5m: Decimal
    cache_write_1h: Decimal
    cache_read: Decimal


@dataclass(frozen=True, slots=True)
class Tier:
    """Rates for the whole request once its prompt exceeds ``above_prompt_tokens``."""

    above_prompt_tokens: int
    rates: Rates


@dataclass(frozen=True, slots=True)
class Price:
    """One dated version of a model's prices."""

    model: str
    effective_from: datetime
    rates: Rates
    tiers: tuple[Tier, ...] = ()
    inference_geo: tuple[tuple[str, Decimal], ...] = ()

    def rates_for(self, prompt_tokens: int) -> Rates:
        """The rates for a request whose prompt (input + cache writes + reads) has this size."""
        chosen = self.rates
        for tier in self.tiers:  # ascending thresholds
            if prompt_tokens > tier.above_prompt_tokens:
                chosen = tier.rates
        return chosen

    def geo_multiplier(self, inference_geo: str) -> Decimal:
        """The multiplier for ``usage.inference_geo``; 1 for any geo the table does not name."""
        for geo, multiplier in self.inference_geo:
            if geo == inference_geo:
                return multiplier
        return Decimal(1)


def normalise_model_id(model: str) -> str:
    """The Anthropic API id behind a model id as Bedrock or Vertex spell it.

    ``us.anthropic.claude-sonnet-4-5-20250929-v1:0`` and ``claude-sonnet-4-5@20250929``
    both become ``claude-sonnet-4-5-20250929``.  Nothing else is rewritten.
    """
    name = model.strip().lower()
    if bedrock := _BEDROCK.match(name):
        name = bedrock["id"]
    if vertex := _VERTEX.match(name):
        name = f"{vertex['id']}-{vertex['date']}"
    return name


@dataclass(frozen=True)
class PriceTable:
    """Every model's dated prices, and every id or alias that names each model."""

    versions: Mapping[str, tuple[Price, ...]]  # canonical id → versions, oldest first
    ids: Mapping[str, str]  # canonical id or alias → canonical id

    def resolve(self, model: str) -> str | None:
        """The canonical id for ``model`` (an id, an alias, a Bedrock or Vertex id)."""
        raw = model.strip().lower()
        return self.ids.get(raw) or self.ids.get(normalise_model_id(raw))

    def lookup(self, model: str, at: datetime | float) -> Price | None:
        """The price in effect for ``model`` at ``at``, or None if it has none then.

        ``at`` is a datetime (naive means UTC) or epoch seconds.  The version used
        is the latest whose ``effective_from`` is on or before ``at``.
        """
        canonical = self.resolve(model)
        if canonical is None:
            return None
        versions = self.versions[canonical]
        index = bisect.bisect_right([v.effective_from for v in versions], _utc(at))
        return versions[index - 1] if index else None


def load_price_table(path: Path | None = None) -> PriceTable:
    """The packaged price table, overridden and extended by the operator file at ``path``.

    The files merge by model id: an operator entry adds its aliases to the model
    and its price versions by ``effective_from``, replacing a packaged version
    with the same date.  A model the package does not know is added whole.
    """
    packaged = resources.files("gatehouse.ledger").joinpath("prices.yaml")
    models = _parse(yaml.safe_load(packaged.read_text(encoding="utf-8")), "prices.yaml")
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
            data = yaml.safe_load(text)
        except (OSError, yaml.YAMLError) as exc:
            raise SettingsError(f"price table {path}: cannot read it: {exc}") from exc
        for model, (aliases, versions) in _parse(data, str(path)).items():
            # An operator may key an entry by an alias of a packaged model.
            target = next((m for m, (a, _) in models.items() if model in a), model)
            known_aliases, known_versions = models.setdefault(target, (set(), {}))
            known_aliases |= aliases
            known_versions.update(versions)
    return _build(models)


_Parsed = dict[str, tuple[set[str], dict[datetime, Price]]]


def _parse(data: Any, source: str) -> _Parsed:
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise SettingsError(f"price table {source}: expected a mapping with 'models:'")
    parsed: _Parsed = {}
    for key, entry in data["models"].items():
        model = str(key).strip().lower()
        where = f"price table {source}: model {model!r}"
        if not isinstance(entry, dict) or not isinstance(entry.get("prices", []), list):
            raise SettingsError(f"{where}: expected a mapping with a 'prices:' list")
        _no_unknown(entry, _MODEL_FIELDS, where)
        aliases = entry.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise SettingsError(f"{where}: field 'aliases': expected a list of ids")
        versions: dict[datetime, Price] = {}
        for raw in entry.get("prices", []):
            price = _version(model, raw, where)
            if price.effective_from in versions:
                raise SettingsError(
                    f"{where}: two prices with effective_from {price.effective_from.date()}"
                )
            versions[price.effective_from] = price
        parsed[model] = ({a.strip().lower() for a in aliases}, versions)
    return parsed


def _version(model: str, raw: Any, where: str) -> Price:
    if not isinstance(raw, dict):
        raise SettingsError(f"{where}: each entry of 'prices' must be a mapping")
    _no_unknown(raw, _VERSION_FIELDS, where)
    effective = _effective_from(raw.get("effective_from"), where)
    where = f"{where}, price from {effective.date()}"
    tiers = []
    for tier in raw.get("tiers", []):
        if not isinstance(tier, dict):
            raise SettingsError(f"{where}: field 'tiers': each tier must be a mapping")
        _no_unknown(tier, _TIER_FIELDS, f"{where}, tier")
        above = tier.get("above_prompt_tokens")
        if isinstance(above, bool) or not isinstance(above, int) or above < 0:
            raise SettingsError(f"{where}: field 'above_prompt_tokens': expected a whole number")
        tiers.append(Tier(above, _rates(tier, f"{where}, tier above {above}")))
    tiers.sort(key=lambda t: t.above_prompt_tokens)
    geo = raw.get("inference_geo", {})
    if not isinstance(geo, dict):
        raise SettingsError(f"{where}: field 'inference_geo': expected a mapping geo → multiplier")
    return Price(
        model=model,
        effective_from=effective,
        rates=_rates(raw, where),
        tiers=tuple(tiers),
        inference_geo=tuple(
            (str(name), _decimal(value, where, f"inference_geo.{name}"))
            for name, value in sorted(geo.items())
        ),
    )


def _rates(raw: dict[str, Any], where: str) -> Rates:
    values = {}
    for name in RATE_FIELDS:
        if name not in raw:
            raise SettingsError(f"{where}: field {name!r} is missing")
        values[name] = _decimal(raw[name], where, name)
    return Rates(**values)


def _decimal(value: Any, where: str, name: str) -> Decimal:
    if isinstance(value, float):
        raise SettingsError(f"{where}: field {name!r}: quote {value} so it stays exact")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SettingsError(f"{where}: field {name!r}: expected a decimal string, got {value!r}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise SettingsError(f"{where}: field {name!r}: {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise SettingsError(f"{where}: field {name!r}: {value!r} must be zero or more")
    return number


def _effective_from(value: Any, where: str) -> datetime:
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value)
        except ValueError:
            value = None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise SettingsError(f"{where}: field 'effective_from': expected a date (YYYY-MM-DD)")
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _no_unknown(raw: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        raise SettingsError(f"{where}: unknown field {unknown[0]!r}")


def _build(models: _Parsed) -> PriceTable:
    ids: dict[str, str] = {}
    for model, (aliases, dated) in models.items():
        if not dated:
            raise SettingsError(f"price table: model {model!r}: field 'prices' is missing")
        for name in (model, *sorted(aliases)):
            other = ids.setdefault(name, model)
            if other != model:
                raise SettingsError(f"price table: id {name!r} names both {other!r} and {model!r}")
    versions = {
        model: tuple(replace(versions[key], model=model) for key in sorted(versions))
        for model, (_, versions) in models.items()
    }
    return PriceTable(versions=MappingProxyType(versions), ids=MappingProxyType(ids))


def _utc(at: datetime | float) -> datetime:
    if isinstance(at, datetime):
        return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    return datetime.fromtimestamp(at, UTC)
