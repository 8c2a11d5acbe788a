"""Chargeback services: what `gatehouse chargeback` and the admin API both call.

Each function parses its plain-string arguments (so both callers refuse bad
input the same way, with `InvalidRequest`), runs the store's grouped queries
and hands the rows to the pure rollup and export code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gatehouse.errors import InvalidRequest
from gatehouse.ledger.exports import Export, ExportFormat, export, parse_format
from gatehouse.ledger.prices import RATE_FIELDS, PriceTable, Rates
from gatehouse.ledger.rollups import Dimension, Period, Report, build_report, parse_dimension
from gatehouse.ledger.rollups import day as parse_day
from gatehouse.ledger.rollups import month as parse_month
from gatehouse.store import reports
from gatehouse.store.db import Database


def parse_period(
    month: str | None, day: str | None = None, *, names: tuple[str, str] = ("month", "day")
) -> Period:
    """At most one of ``month`` (``YYYY-MM``) and ``day`` (``YYYY-MM-DD``) as a `Period`.

    Neither means the current UTC month.  ``names`` spell the two parameters
    in messages (``("--month", "--day")`` for the CLI).
    """
    if month is not None and day is not None:
        raise InvalidRequest(f"give {names[0]} or {names[1]}, not both")
    if day is not None:
        return parse_day(day, names[1])
    return parse_month(month or datetime.now(UTC).strftime("%Y-%m"), names[0])


async def chargeback_report(
    db: Database,
    period: Period,
    by: Dimension | str,
    *,
    daily: bool = False,
    team: str | None = None,
) -> Report:
    """Spend in ``period`` grouped along ``by``, with the total and the seed figures.

    For a month, the figures compare cost per active developer with the month
    before; ``daily`` adds the per-day totals.  With ``team``, only that team's
    records count, figures included.  One grouped scan of the period's records,
    one of last month's, and one more for ``daily``.
    """
    dimension = by if isinstance(by, Dimension) else parse_dimension(by)
    start, end = period.start_ts, period.end_ts
    grouped = await reports.rollup(db, start, end, dimension, team=team)
    previous = None
    if period.is_month:
        before = period.previous_month()
        previous = await reports.developer_spend(db, before.start_ts, before.end_ts, team=team)
    days = await reports.daily(db, start, end, team=team) if daily else []
    return build_report(period, dimension, grouped.rows, grouped.developer_spend, previous, days)


async def chargeback_export(db: Database, period: Period, fmt: ExportFormat | str) -> Export:
    """The period's usage as a CSV or a FOCUS file (`Export.text`) with its totals."""
    chosen = fmt if isinstance(fmt, ExportFormat) else parse_format(fmt)
    lines = await reports.charge_lines(db, period.start_ts, period.end_ts)
    return export(chosen, period, lines)


def describe_prices(table: PriceTable, at: datetime | None = None) -> list[dict[str, Any]]:
    """Every model of ``table`` with its aliases and dated prices, as JSON-ready dicts.

    Rates are the table's exact decimal strings (USD per million tokens);
    ``in_effect`` marks the version that prices a request made at ``at`` (now).
    """
    moment = at or datetime.now(UTC)
    aliases: dict[str, list[str]] = {}
    for name, model in table.ids.items():
        if name != model:
            aliases.setdefault(model, []).append(name)
    out = []
    for model in sorted(table.versions):
        current = table.lookup(model, moment)
        out.append(
            {
                "model": model,
                "aliases": sorted(aliases.get(model, [])),
                "prices": [
                    {
                        "effective_from": price.effective_from.date().isoformat(),
                        "in_effect": price is current,
                        **_rates(price.rates),
                        "tiers": [
                            {"above_prompt_tokens": t.above_prompt_tokens, **_rates(t.rates)}
                            for t in price.tiers
                        ],
                        "inference_geo": {geo: str(m) for geo, m in price.inference_geo},
                    }
                    for price in table.versions[model]
                ],
            }
        )
    return out


def _rates(rates: Rates) -> dict[str, str]:
    return {name: str(getattr(rates, name)) for name in RATE_FIELDS}
