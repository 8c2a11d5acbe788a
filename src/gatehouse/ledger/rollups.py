"""Rollups: usage summed by team, developer, repository, model, cost centre, … and the seed figures.

Pure values and arithmetic; the GROUP BY itself runs in the database
(`gatehouse.store.reports`), and `aggregate` here does the same over records in
memory, which is what the tests hold the SQL to.

Money is integer micro-dollars throughout.  A record whose model had no price
(``cost_micros`` None) is counted in ``unpriced`` and never added as zero, so
every figure reads "this much known, and this many records unknown".  Floats
appear only in ratios meant for display (shares, month-over-month change).

Periods are UTC: a month is ``YYYY-MM`` from 00:00 on the 1st to 00:00 on the
1st of the next month, a day ``YYYY-MM-DD``; both half-open.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from gatehouse.errors import InvalidRequest
from gatehouse.ledger.cost import cache_write_tokens
from gatehouse.ledger.usage import UsageRecord

MICROS_PER_USD = 1_000_000
NO_VALUE = "(none)"  # how an empty attribution (no team, no repository) is shown


class Dimension(StrEnum):
    """What a rollup groups by; the value is how the CLI and the API spell it."""

    TEAM = "team"
    DEVELOPER = "developer"
    REPOSITORY = "repository"
    MODEL = "model"
    COST_CENTRE = "cost-centre"
    SESSION = "session"
    CLIENT = "client"


_DIMENSION_SPELLINGS = {
    **{d.value: d for d in Dimension},
    "cost_centre": Dimension.COST_CENTRE,
    "cost-center": Dimension.COST_CENTRE,
    "cost_center": Dimension.COST_CENTRE,
}


def parse_dimension(value: str, name: str = "by") -> Dimension:
    """``team``, ``cost-centre`` … as a `Dimension`; `InvalidRequest` naming the choices if not.

    ``name`` is how the caller spells the parameter in the message (``--by``).
    """
    found = _DIMENSION_SPELLINGS.get(value.strip().lower())
    if found is None:
        choices = "|".join(d.value for d in Dimension)
        raise InvalidRequest(f"{name} must be one of {choices} (got {value!r})")
    return found


def dimension_value(record: UsageRecord, by: Dimension) -> str:
    """The record's value along ``by``; the model is the served one, else the requested one."""
    if by is Dimension.MODEL:
        return record.model_served or record.model_requested
    if by is Dimension.COST_CENTRE:
        return record.cost_centre
    if by is Dimension.SESSION:
        return record.session_id
    value: str = getattr(record, by.value)
    return value


# -- periods -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open UTC interval named as the user wrote it (``2026-11`` or ``2026-11-05``)."""

    label: str
    start: datetime
    end: datetime

    @property
    def start_ts(self) -> float:
        return self.start.timestamp()

    @property
    def end_ts(self) -> float:
        return self.end.timestamp()

    @property
    def is_month(self) -> bool:
        return len(self.label) == 7

    def previous_month(self) -> Period:
        """The calendar month before the one this period starts in."""
        first = self.start.date().replace(day=1)
        last_of_previous = first - timedelta(days=1)
        return month(last_of_previous.strftime("%Y-%m"))

    def days(self) -> list[date]:
        """Every UTC day the period covers, in order."""
        first = self.start.date()
        return [first + timedelta(days=n) for n in range((self.end - self.start).days)]


_MONTH = re.compile(r"[0-9]{4}-[0-9]{2}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def month(value: str, name: str = "month") -> Period:
    """The UTC calendar month ``YYYY-MM``; `InvalidRequest` for anything else (``2026-13``)."""
    text = value.strip()
    try:
        if not _MONTH.fullmatch(text):
            raise ValueError(text)
        start = datetime(int(text[:4]), int(text[5:]), 1, tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(f"{name} must be a month as YYYY-MM (got {value!r})") from None
    after = start + timedelta(days=32)
    return Period(text, start, after.replace(day=1))


def day(value: str, name: str = "day") -> Period:
    """The UTC day ``YYYY-MM-DD``; `InvalidRequest` for anything else."""
    text = value.strip()
    try:
        if not _DAY.fullmatch(text):  # fromisoformat also takes weeks (2026-W45-3)
            raise ValueError(text)
        parsed = date.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"{name} must be a date as YYYY-MM-DD (got {value!r})") from None
    start = datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
    return Period(text, start, start + timedelta(days=1))


def utc_day(ts: float) -> date:
    """The UTC calendar day of epoch seconds ``ts``."""
    return datetime.fromtimestamp(ts, UTC).date()


# -- rows ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportRow:
    """One group of a rollup: known cost, how many records, how many of them unpriced, tokens."""

    key: str
    cost_micros: int = 0  # sum over the priced records only
    records: int = 0
    unpriced: int = 0  # records whose model had no price: cost unknown, not zero
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cache_read_tokens: int = 0
    developers: int = 0  # distinct developers in the group

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_write_5m_tokens
            + self.cache_write_1h_tokens
            + self.cache_read_tokens
        )

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["cost_usd"] = decimal_usd(self.cost_micros)
        return data


_SUMMED = tuple(f.name for f in fields(ReportRow) if f.name not in ("key", "developers"))


def combine(key: str, rows: Iterable[ReportRow], *, developers: int) -> ReportRow:
    """The sum of ``rows`` under ``key``.

    Distinct developers do not add up across groups (one developer works in
    several repositories), so the caller says how many there are.
    """
    totals = dict.fromkeys(_SUMMED, 0)
    for row in rows:
        for name in _SUMMED:
            totals[name] += getattr(row, name)
    return ReportRow(key=key, developers=developers, **totals)


def record_row(record: UsageRecord, key: str) -> ReportRow:
    """One record as a one-record group."""
    five, hour = cache_write_tokens(record)
    return ReportRow(
        key=key,
        cost_micros=record.cost_micros or 0,
        records=1,
        unpriced=int(record.cost_micros is None),
        input_tokens=record.input_tokens,
        output_tokens=record.output_tokens,
        cache_write_5m_tokens=five,
        cache_write_1h_tokens=hour,
        cache_read_tokens=record.cache_read_input_tokens,
        developers=1,
    )


def aggregate(records: Iterable[UsageRecord], by: Dimension) -> list[ReportRow]:
    """Group ``records`` along ``by`` in memory, largest cost first (the SQL's reference)."""
    groups: dict[str, list[ReportRow]] = {}
    people: dict[str, set[str]] = {}
    for record in records:
        key = dimension_value(record, by)
        groups.setdefault(key, []).append(record_row(record, key))
        people.setdefault(key, set()).add(record.developer)
    rows = [combine(k, rs, developers=len(people[k])) for k, rs in groups.items()]
    return order(rows)


@dataclass(frozen=True, slots=True)
class Grouped:
    """A rollup along one dimension and, from the same records, each developer's known spend."""

    rows: list[ReportRow]
    developer_spend: dict[str, int]


def fold(parts: Iterable[tuple[str, ReportRow]]) -> Grouped:
    """Fold per (value, developer) groups, given as (developer, row keyed by value).

    The database groups by the dimension *and* the developer in one scan; this
    sums those parts per value, counts each value's developers exactly, and
    sums each developer's spend, so one query serves a report and its figures.
    """
    groups: dict[str, list[ReportRow]] = {}
    spend: dict[str, int] = {}
    for developer, row in parts:
        groups.setdefault(row.key, []).append(row)
        spend[developer] = spend.get(developer, 0) + row.cost_micros
    # One part per (value, developer): a value's parts count its developers.  Most
    # sessions have one developer, and skipping the sum for them halves the work.
    rows = [
        pieces[0] if len(pieces) == 1 else combine(key, pieces, developers=len(pieces))
        for key, pieces in groups.items()
    ]
    return Grouped(order(rows), spend)


def order(rows: Iterable[ReportRow]) -> list[ReportRow]:
    """Largest known cost first, then most records, then by name: stable across engines."""
    return sorted(rows, key=lambda r: (-r.cost_micros, -r.records, r.key))


# -- the seed figures ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeveloperStats:
    """Per-developer monthly spend: the figures the seed's executive summary quotes.

    Computed over developers active in the month (at least one record), on
    their known cost.  Percentiles use the nearest-rank method, so P90 is a
    figure some developer actually spent; the median of an even count is the
    mean of the middle two, rounded half-up to a micro-dollar.
    """

    developers: int = 0
    median_micros: int = 0
    p90_micros: int = 0
    top_decile_developers: int = 0  # the top 10 %, at least one
    top_decile_micros: int = 0  # what they spent together
    top_decile_threshold_micros: int = 0  # the least any of them spent
    total_micros: int = 0
    per_developer_micros: int = 0
    previous_developers: int = 0
    previous_per_developer_micros: int | None = None  # None: nobody active last month

    @property
    def top_decile_share(self) -> float | None:
        """Fraction of the month's known spend by the top decile (display only)."""
        return self.top_decile_micros / self.total_micros if self.total_micros else None

    @property
    def month_over_month(self) -> float | None:
        """Change in cost per active developer against last month, as a fraction (display only)."""
        previous = self.previous_per_developer_micros
        if not previous or not self.developers:  # no cost per head on one side
            return None
        return (self.per_developer_micros - previous) / previous

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["top_decile_share"] = self.top_decile_share
        data["month_over_month"] = self.month_over_month
        return data


def developer_stats(spend: Sequence[int], previous_spend: Sequence[int] = ()) -> DeveloperStats:
    """The seed figures from each active developer's known spend this month and last."""
    ordered = sorted(spend)
    n = len(ordered)
    total = sum(ordered)
    previous_n = len(previous_spend)
    previous = _per_head(sum(previous_spend), previous_n) if previous_n else None
    if not n:
        return DeveloperStats(
            previous_developers=previous_n, previous_per_developer_micros=previous
        )
    top = max(1, math.ceil(n / 10))
    return DeveloperStats(
        developers=n,
        median_micros=_median(ordered),
        p90_micros=nearest_rank(ordered, 90),
        top_decile_developers=top,
        top_decile_micros=sum(ordered[n - top :]),
        top_decile_threshold_micros=ordered[n - top],
        total_micros=total,
        per_developer_micros=_per_head(total, n),
        previous_developers=previous_n,
        previous_per_developer_micros=previous,
    )


def nearest_rank(ordered: Sequence[int], percent: int) -> int:
    """The ``percent``-th percentile of an ascending, non-empty sequence (nearest rank)."""
    rank = max(1, math.ceil(percent * len(ordered) / 100))
    return ordered[rank - 1]


def _median(ordered: Sequence[int]) -> int:
    n = len(ordered)
    if n % 2:
        return ordered[n // 2]
    return _per_head(ordered[n // 2 - 1] + ordered[n // 2], 2)


def _per_head(total: int, heads: int) -> int:
    """``total / heads`` rounded half-up to a whole micro-dollar (integers, no floats)."""
    return (2 * total + heads) // (2 * heads)


# -- the report ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayTotal:
    """One UTC day of a period."""

    day: date
    cost_micros: int
    records: int
    unpriced: int

    def to_json(self) -> dict[str, Any]:
        return {
            "day": self.day.isoformat(),
            "cost_micros": self.cost_micros,
            "cost_usd": decimal_usd(self.cost_micros),
            "records": self.records,
            "unpriced": self.unpriced,
        }


@dataclass(frozen=True)
class Report:
    """A period's spend grouped along one dimension, with its total and the seed figures.

    ``total`` is the sum of ``rows`` (rollups conserve the sum), except its
    ``developers``, which counts each developer once.
    """

    period: str
    by: Dimension
    rows: tuple[ReportRow, ...]
    total: ReportRow
    stats: DeveloperStats
    days: tuple[DayTotal, ...] = field(default=())
    currency: str = "USD"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: integers for money (micro-dollars) and exact USD strings."""
        return {
            "period": self.period,
            "by": self.by.value,
            "currency": self.currency,
            "total": self.total.to_json(),
            "rows": [row.to_json() for row in self.rows],
            "stats": self.stats.to_json(),
            "days": [d.to_json() for d in self.days],
        }


def build_report(
    period: Period,
    by: Dimension,
    rows: Iterable[ReportRow],
    developer_spend: Mapping[str, int],
    previous_spend: Mapping[str, int] | None = None,
    days: Iterable[DayTotal] = (),
) -> Report:
    """Assemble a `Report` from grouped rows and per-developer known spend.

    ``developer_spend`` names every developer active in the period (records
    without a developer are left out of the per-developer figures);
    ``previous_spend`` is last month's, for the month-over-month change.
    """
    ordered = tuple(order(rows))
    spend = [micros for developer, micros in developer_spend.items() if developer]
    before = [m for d, m in (previous_spend or {}).items() if d]
    total = combine("total", ordered, developers=len(spend))
    return Report(
        period=period.label,
        by=by,
        rows=ordered,
        total=total,
        stats=developer_stats(spend, before),
        days=tuple(days),
    )


def decimal_usd(micros: int) -> str:
    """Integer micro-dollars as an exact decimal string with six places (``"12.345678"``)."""
    whole, fraction = divmod(abs(micros), MICROS_PER_USD)
    return f"{'-' if micros < 0 else ''}{whole}.{fraction:06d}"
