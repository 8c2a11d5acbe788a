"""What a usage record costs, in integer micro-dollars, computed exactly.

A rate of $R per million tokens is R micro-dollars per token, so each part of a
request costs ``tokens × rate`` micro-dollars with no scaling.  The parts are
kept exact (`Decimal`, no floats, an exactness trap on), multiplied by the
``inference_geo`` multiplier, summed, and rounded half-up to a whole
micro-dollar **once per record**.  Rollups add the rounded per-record figures,
so a team's total is always the sum of its records.

Which rates apply is decided on the whole request: a tier (Haiku 5.5 past 100K
prompt tokens, Sonnet 4/4.5 past 200K) is chosen by the prompt size — input plus
cache writes plus cache reads — and then prices every token of the request.

Cache writes: tokens reported as 1-hour writes are priced at the 1-hour rate;
every other cache-creation token, including all of them when the API gave no
5m/1h split, at the 5-minute rate.

A model the table does not price gives a `Cost` that is ``unknown`` (``micros``
is None), never zero; the caller records it as such and raises an event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Context, Decimal, Inexact, InvalidOperation, localcontext

from gatehouse.ledger.prices import Price, PriceTable
from gatehouse.ledger.usage import UsageRecord

# Exact arithmetic: 60 digits is far beyond any token count × rate, and Inexact
# is trapped so a lost digit would raise rather than misprice.
_EXACT = Context(prec=60, rounding=ROUND_HALF_UP, traps=[Inexact, InvalidOperation])
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Cost:
    """The cost of one usage record; parts are exact micro-dollars, ``micros`` rounded."""

    model: str
    micros: int | None  # None: the model has no price — unknown, not free
    input: Decimal = _ZERO
    output: Decimal = _ZERO
    cache_write_5m: Decimal = _ZERO
    cache_write_1h: Decimal = _ZERO
    cache_read: Decimal = _ZERO
    tier: int = 0  # above_prompt_tokens of the tier applied; 0 for base rates
    geo_multiplier: Decimal = Decimal(1)

    @property
    def unknown(self) -> bool:
        return self.micros is None

    @property
    def exact(self) -> Decimal:
        """The unrounded micro-dollars: the sum of the parts."""
        with localcontext(_EXACT):
            parts = (self.input, self.output, self.cache_write_5m, self.cache_write_1h)
            return sum(parts, self.cache_read)


def cache_write_tokens(usage: UsageRecord) -> tuple[int, int]:
    """(5-minute, 1-hour) cache-write tokens; unsplit writes count as 5-minute."""
    hour = usage.cache_creation_1h_tokens
    five = max(usage.cache_creation_5m_tokens, usage.cache_creation_input_tokens - hour)
    return five, hour


def prompt_tokens(usage: UsageRecord) -> int:
    """The prompt size that picks a tier: input + cache writes + cache reads."""
    five, hour = cache_write_tokens(usage)
    return usage.input_tokens + five + hour + usage.cache_read_input_tokens


def price_record(
    usage: UsageRecord, price: Price | None, *, model: str = "", inference_geo: str = ""
) -> Cost:
    """The cost of ``usage`` at ``price``; ``unknown`` when ``price`` is None."""
    name = model or (price.model if price else usage.model_served or usage.model_requested)
    if price is None:
        return Cost(model=name, micros=None)
    size = prompt_tokens(usage)
    rates = price.rates_for(size)
    tier = max(
        (t.above_prompt_tokens for t in price.tiers if size > t.above_prompt_tokens), default=0
    )
    multiplier = price.geo_multiplier(inference_geo)
    five, hour = cache_write_tokens(usage)
    with localcontext(_EXACT):
        parts = (
            usage.input_tokens * rates.input * multiplier,
            usage.output_tokens * rates.output * multiplier,
            five * rates.cache_write_5m * multiplier,
            hour * rates.cache_write_1h * multiplier,
            usage.cache_read_input_tokens * rates.cache_read * multiplier,
        )
        micros = int(sum(parts, _ZERO).to_integral_value(rounding=ROUND_HALF_UP))
    return Cost(name, micros, *parts, tier=tier, geo_multiplier=multiplier)


def cost_micros(usage: UsageRecord, price: Price, *, inference_geo: str = "") -> int:
    """The cost of ``usage`` at ``price`` in whole micro-dollars (rounded once, half-up)."""
    micros = price_record(usage, price, inference_geo=inference_geo).micros
    assert micros is not None  # a price was given
    return micros


def cost_of(usage: UsageRecord, table: PriceTable, *, inference_geo: str = "") -> Cost:
    """Look up the served model (else the requested one) at the record's time and price it."""
    model = usage.model_served or usage.model_requested
    price = table.lookup(model, usage.ts)
    return price_record(usage, price, model=model, inference_geo=inference_geo)


@dataclass(frozen=True, slots=True)
class Rollup:
    """A sum of per-record costs; unknown records are counted, never added as zero."""

    micros: int = 0
    records: int = 0
    unknown: int = 0

    def add(self, cost: Cost) -> Rollup:
        if cost.micros is None:
            return Rollup(self.micros, self.records + 1, self.unknown + 1)
        return Rollup(self.micros + cost.micros, self.records + 1, self.unknown)

    def __add__(self, other: Rollup) -> Rollup:
        return Rollup(
            self.micros + other.micros, self.records + other.records, self.unknown + other.unknown
        )


def rollup(costs: Iterable[Cost]) -> Rollup:
    total = Rollup()
    for cost in costs:
        total = total.add(cost)
    return total
