"""Chargeback queries: usage summed in the database, never row by row in Python.

Every function takes a `Database`, a half-open epoch-seconds interval and
optionally one team (an engineering manager sees only theirs), and runs one
``GROUP BY`` over ``usage_records`` (SQLAlchemy Core, the same SQL on
SQLite and PostgreSQL).  Cost sums cover priced records only; records with
``cost_micros IS NULL`` are counted as unpriced, never added as zero.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from gatehouse.ledger.exports import ChargeLine
from gatehouse.ledger.rollups import DayTotal, Dimension, Grouped, ReportRow, fold
from gatehouse.store.db import Database
from gatehouse.store.schema import usage_records

_U = usage_records.c
_SECONDS_PER_DAY = 86_400
_EPOCH = date(1970, 1, 1)

# Constants in grouped expressions are inlined, not bound: PostgreSQL matches a
# SELECT expression to its GROUP BY only when both are the same text, and two
# bound parameters ($1, $2) are not.
_EMPTY: sa.ColumnElement[str] = sa.literal_column("''", sa.String)
_DAY: sa.ColumnElement[int] = sa.literal_column(str(_SECONDS_PER_DAY), sa.Integer)
_ONE: sa.ColumnElement[int] = sa.literal_column("1", sa.Integer)
_ZERO: sa.ColumnElement[int] = sa.literal_column("0", sa.Integer)

# The model a record is charged for: the one that served it, else the one asked for.
_MODEL = sa.case((_U.model_served != _EMPTY, _U.model_served), else_=_U.model_requested)
# Cache-creation tokens not reported as 1-hour writes are 5-minute writes, as
# `gatehouse.ledger.cost.cache_write_tokens` prices them.
_UNSPLIT = _U.cache_creation_input_tokens - _U.cache_creation_1h_tokens
_CACHE_5M = sa.case(
    (_U.cache_creation_5m_tokens > _UNSPLIT, _U.cache_creation_5m_tokens), else_=_UNSPLIT
)

_COLUMNS: dict[Dimension, sa.ColumnElement[Any]] = {
    Dimension.TEAM: _U.team,
    Dimension.DEVELOPER: _U.developer,
    Dimension.REPOSITORY: _U.repository,
    Dimension.MODEL: _MODEL,
    Dimension.COST_CENTRE: _U.cost_centre,
    Dimension.SESSION: _U.session_id,
    Dimension.CLIENT: _U.client,
}


def _sum(column: sa.ColumnElement[Any], name: str) -> sa.Label[Any]:
    # PostgreSQL sums BIGINT as NUMERIC, which arrives as a Decimal: a cast back
    # keeps ~60k-group results (sessions) from spending a second decoding them.
    total = sa.cast(sa.func.sum(column), sa.BigInteger)
    return sa.func.coalesce(total, _ZERO).label(name)


def _measures() -> list[sa.Label[Any]]:
    return [
        _sum(_U.cost_micros, "cost_micros"),
        sa.func.count().label("records"),
        (sa.func.count() - sa.func.count(_U.cost_micros)).label("unpriced"),
        _sum(_U.input_tokens, "input_tokens"),
        _sum(_U.output_tokens, "output_tokens"),
        _sum(_CACHE_5M, "cache_write_5m_tokens"),
        _sum(_U.cache_creation_1h_tokens, "cache_write_1h_tokens"),
        _sum(_U.cache_read_input_tokens, "cache_read_tokens"),
    ]


def _within(start_ts: float, end_ts: float, team: str | None) -> sa.ColumnElement[bool]:
    """The interval, and only ``team``'s records when one is given (a manager's view)."""
    inside = sa.and_(_U.ts >= start_ts, _U.ts < end_ts)
    return inside if team is None else sa.and_(inside, _U.team == team)


def _row(row: sa.RowMapping, key: str, developers: int) -> ReportRow:
    return ReportRow(
        key=key,
        cost_micros=int(row["cost_micros"]),
        records=int(row["records"]),
        unpriced=int(row["unpriced"]),
        input_tokens=int(row["input_tokens"]),
        output_tokens=int(row["output_tokens"]),
        cache_write_5m_tokens=int(row["cache_write_5m_tokens"]),
        cache_write_1h_tokens=int(row["cache_write_1h_tokens"]),
        cache_read_tokens=int(row["cache_read_tokens"]),
        developers=developers,
    )


async def rollup(
    db: Database, start_ts: float, end_ts: float, by: Dimension, *, team: str | None = None
) -> Grouped:
    """Usage with ``start_ts <= ts < end_ts`` grouped along ``by``, and each developer's spend.

    One scan: the database groups by the value and the developer (cheaper
    than ``count(DISTINCT developer)`` plus a second query for the per-developer
    figures), and `fold` sums the parts.
    """
    value = _COLUMNS[by]
    keys = (value,) if by is Dimension.DEVELOPER else (value, _U.developer)
    query = (
        sa.select(value.label("key"), _U.developer.label("who"), _ONE.label("developers"))
        .add_columns(*_measures())
        .where(_within(start_ts, end_ts, team))
        .group_by(*keys)
    )
    rows = await db.fetch_all(query, f"roll up usage by {by.value}")
    return fold((str(r["who"]), _row(r, str(r["key"]), 1)) for r in rows)


async def developer_spend(
    db: Database, start_ts: float, end_ts: float, *, team: str | None = None
) -> dict[str, int]:
    """Each developer active in the interval and their known spend (0 if all unpriced)."""
    query = (
        sa.select(_U.developer, _sum(_U.cost_micros, "cost_micros"))
        .where(_within(start_ts, end_ts, team))
        .group_by(_U.developer)
    )
    rows = await db.fetch_all(query, "sum usage per developer")
    return {str(r["developer"]): int(r["cost_micros"]) for r in rows}


def _day_index(db: Database) -> sa.ColumnElement[Any]:
    """Days since 1970-01-01 (UTC) of ``ts``, computed by the database."""
    days = _U.ts / _DAY
    if db.dialect == "postgresql":
        # A cast to integer rounds on PostgreSQL; floor() truncates as intended.
        return sa.func.floor(days)
    # SQLite's CAST truncates toward zero, which is the floor for any time after 1970.
    return sa.cast(days, sa.Integer)


async def daily(
    db: Database, start_ts: float, end_ts: float, *, team: str | None = None
) -> list[DayTotal]:
    """Per UTC day totals for the interval, oldest first; days without usage are absent."""
    index = _day_index(db).label("day")
    query = (
        sa.select(
            index,
            _sum(_U.cost_micros, "cost_micros"),
            sa.func.count().label("records"),
            (sa.func.count() - sa.func.count(_U.cost_micros)).label("unpriced"),
        )
        .where(_within(start_ts, end_ts, team))
        .group_by(index)
        .order_by(index)
    )
    rows = await db.fetch_all(query, "roll up usage by day")
    return [
        DayTotal(
            day=_EPOCH + timedelta(days=int(r["day"])),
            cost_micros=int(r["cost_micros"]),
            records=int(r["records"]),
            unpriced=int(r["unpriced"]),
        )
        for r in rows
    ]


async def charge_lines(
    db: Database, start_ts: float, end_ts: float, *, team: str | None = None
) -> list[ChargeLine]:
    """Usage in the interval at the exports' grain, in a stable order."""
    index = _day_index(db).label("day")
    unpriced = _U.cost_micros.is_(None)
    grain = (index, _U.developer, _U.team, _U.repository, _U.cost_centre, _MODEL, unpriced)
    query = (
        sa.select(
            *grain[:-2],
            _MODEL.label("model"),
            unpriced.label("is_unpriced"),
            _ONE.label("developers"),
            *_measures(),
        )
        .where(_within(start_ts, end_ts, team))
        .group_by(*grain)
    )
    rows = await db.fetch_all(query, "read usage for the export")
    lines = [
        ChargeLine(
            day=_EPOCH + timedelta(days=int(r["day"])),
            developer=str(r["developer"]),
            team=str(r["team"]),
            repository=str(r["repository"]),
            cost_centre=str(r["cost_centre"]),
            model=str(r["model"]),
            priced=not r["is_unpriced"],
            usage=_row(r, "", 1),
        )
        for r in rows
    ]
    lines.sort(
        key=lambda x: (x.day, x.team, x.developer, x.repository, x.cost_centre, x.model, x.priced)
    )
    return lines
