"""The chargeback SQL on both engines: grouped in the database, equal to the sums in memory.

``database_url`` runs each test on SQLite and, with GATEHOUSE_TEST_POSTGRES_URL,
on a fresh PostgreSQL database (marked ``postgres``).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from gatehouse.ledger.exports import ExportFormat
from gatehouse.ledger.reporting import chargeback_export, chargeback_report
from gatehouse.ledger.rollups import Dimension, aggregate, day, month, utc_day
from gatehouse.ledger.usage import UsageRecord
from gatehouse.store import reports
from gatehouse.store.db import Database
from tests.invoice import load_invoice

NOV = month("2026-11")


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url)
    try:
        yield database
    finally:
        await database.close()


def mixed_month(count: int, seed: int) -> list[UsageRecord]:
    """Records across November and its edges, a fifth of them unpriced, odd cache splits."""
    rnd = random.Random(seed)
    names = ["", "a@x", "b@x", "c@x", "d@x"]
    span = NOV.end_ts - NOV.start_ts
    out = []
    for n in range(count):
        creation = rnd.choice([0, 10, 5000])
        hour = rnd.choice([0, creation // 2, creation])
        out.append(
            UsageRecord(
                id=f"r{seed}-{n}",
                ts=NOV.start_ts + rnd.uniform(-86_400, span + 86_400),
                developer=rnd.choice(names),
                team=rnd.choice(["", "payments", "search"]),
                repository=rnd.choice(["", "acme/api", "acme/web"]),
                session_id=rnd.choice(["s1", "s2", "s3"]),
                client=rnd.choice(["claude-code", "sdk"]),
                cost_centre=rnd.choice(["", "CC-1"]),
                model_requested=rnd.choice(["opus", "claude-opus-4-6"]),
                model_served=rnd.choice(["", "claude-opus-4-6", "claude-haiku-5-5"]),
                input_tokens=rnd.randrange(10**6),
                output_tokens=rnd.randrange(10**5),
                cache_creation_input_tokens=creation,
                cache_creation_5m_tokens=rnd.choice([0, creation - hour, creation]),
                cache_creation_1h_tokens=hour,
                cache_read_input_tokens=rnd.randrange(10**7),
                cost_micros=None if rnd.random() < 0.2 else rnd.randrange(10**9),
            )
        )
    return out


@pytest.mark.parametrize("by", list(Dimension))
async def test_the_sql_rollup_equals_the_rollup_in_memory(db: Database, by: Dimension) -> None:
    batch = mixed_month(400, seed=5)
    await db.insert_usage(batch)
    inside = [r for r in batch if NOV.start_ts <= r.ts < NOV.end_ts]
    grouped = await reports.rollup(db, NOV.start_ts, NOV.end_ts, by)
    assert sorted(grouped.rows, key=lambda r: r.key) == sorted(
        aggregate(inside, by), key=lambda r: r.key
    )
    spend: dict[str, int] = {}
    for r in inside:
        spend[r.developer] = spend.get(r.developer, 0) + (r.cost_micros or 0)
    assert grouped.developer_spend == spend
    assert await reports.developer_spend(db, NOV.start_ts, NOV.end_ts) == spend


async def test_days_and_charge_lines_add_up_to_the_month(db: Database) -> None:
    batch = mixed_month(300, seed=9)
    await db.insert_usage(batch)
    inside = [r for r in batch if NOV.start_ts <= r.ts < NOV.end_ts]
    known = sum(r.cost_micros or 0 for r in inside)
    days = await reports.daily(db, NOV.start_ts, NOV.end_ts)
    assert {d.day for d in days} == {utc_day(r.ts) for r in inside}
    assert sum(d.cost_micros for d in days) == known
    assert sum(d.unpriced for d in days) == sum(r.cost_micros is None for r in inside)
    lines = await reports.charge_lines(db, NOV.start_ts, NOV.end_ts)
    assert sum(x.usage.cost_micros for x in lines) == known
    assert sum(x.usage.records for x in lines) == len(inside)
    assert all(x.usage.cost_micros == 0 for x in lines if not x.priced)
    spend = await reports.developer_spend(db, NOV.start_ts, NOV.end_ts)
    assert sum(spend.values()) == known


async def test_the_invoice_matches_to_the_micro_dollar(db: Database) -> None:
    invoice = load_invoice()
    await db.insert_usage(invoice.records)
    for by in Dimension:
        report = await chargeback_report(db, NOV, by, daily=True)
        assert report.total.cost_micros == invoice.total_micros == 700_181
        assert sum(d.cost_micros for d in report.days) == invoice.total_micros
        assert report.total.unpriced == 1
    focus = await chargeback_export(db, NOV, ExportFormat.FOCUS)
    assert focus.cost_micros == invoice.total_micros
    assert focus.unpriced_records == 1
    billed = [line.split(",", 1)[0] for line in focus.text.splitlines()[1:]]
    assert sum(Decimal(b) for b in billed) == Decimal("0.700181")
    single = await chargeback_report(db, day("2026-11-30"), "model")
    assert [(r.key, r.cost_micros) for r in single.rows] == [("claude-opus-5-5", 154_000)]
    assert single.stats.month_over_month is None  # a day has no month before it


async def test_a_team_scoped_report_sees_only_that_team(db: Database) -> None:
    await db.insert_usage(load_invoice().records)
    report = await chargeback_report(db, NOV, "developer", team="payments", daily=True)
    # alice 167,500 + 207,500; carol 33,000 (her Haiku 4.5 record is platform's)
    assert [(r.key, r.cost_micros) for r in report.rows] == [
        ("alice@example.com", 375_000),
        ("carol@example.com", 33_000),
    ]
    assert report.total.cost_micros == sum(d.cost_micros for d in report.days) == 408_000
    assert report.stats.developers == 2
    assert report.stats.previous_per_developer_micros == 30_000  # alice in October
