"""Monthly chargeback rollups over a million usage records, on SQLite and PostgreSQL.

Loads ``--records`` priced usage records (default 1,000,000) into one UTC month
(2027-03), plus a tenth as many in each neighbouring month so the query has to
select its month, into a fresh SQLite file and, when ``--postgres URL`` or
GATEHOUSE_TEST_POSTGRES_URL names a server, into a throwaway PostgreSQL
database created and dropped by the run.  Then, for each engine:

1. times the monthly rollup for every ``--by`` (best of ``--repeat``), the whole
   `chargeback report` (rollup + the seed figures) and the daily rollup against
   the 2 s target, and the FOCUS export for reference;
2. checks the month's total against the sum of the generated costs;
3. checks the hand-computed invoice (tests/fixtures/invoice.yaml, November 2026,
   inserted into the same database): report total against the figure by hand.

Records are built from a pool of a few thousand usage shapes priced once by the
gateway's own `Meter`, so generation is cheap and every cost is real.

Run: `python bench/rollup.py` (a few minutes on 2 cores), `--records 100000` for
a smoke run.  Writes bench/results/rollup.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url

from gatehouse.ledger.exports import ExportFormat
from gatehouse.ledger.meter import Meter
from gatehouse.ledger.prices import load_price_table
from gatehouse.ledger.reporting import chargeback_export, chargeback_report
from gatehouse.ledger.rollups import Dimension, month
from gatehouse.ledger.usage import UsageRecord
from gatehouse.settings import normalize_database_url
from gatehouse.store import reports
from gatehouse.store.db import Database
from gatehouse.store.schema import usage_records, usage_to_tuple

sys.path.insert(0, str(Path(__file__).parents[1]))  # the invoice lives with the tests
from tests.invoice import load_invoice

RESULTS = Path(__file__).parent / "results"
TARGET_S = 2.0
MONTH = month("2027-03")
COLUMNS = [column.name for column in usage_records.columns]
AT = {name: n for n, name in enumerate(COLUMNS)}
MODELS = [
    "claude-opus-4-6",
    "claude-opus-5-5",
    "claude-sonnet-4-5-20250929",
    "claude-sonnet-5",
    "claude-haiku-5-5",
    "claude-haiku-4-5-20251001",
    "claude-unreleased-9",  # no price: counted as unpriced
]


def shapes(per_model: int, rnd: random.Random) -> dict[str, list[tuple[Any, ...]]]:
    """Priced usage shapes for each model, as rows in ``usage_records`` column order."""
    meter = Meter(load_price_table())
    out: dict[str, list[tuple[Any, ...]]] = {}
    for model in MODELS:
        for _ in range(per_model):
            creation = rnd.choice([0, 0, 2_000, 20_000])
            hour = rnd.choice([0, creation])
            record = UsageRecord(
                ts=MONTH.start_ts,
                model_requested=model,
                model_served=model,
                input_tokens=rnd.randrange(1, 5_000),
                output_tokens=rnd.randrange(0, 4_000),
                cache_creation_input_tokens=creation,
                cache_creation_5m_tokens=creation - hour,
                cache_creation_1h_tokens=hour,
                cache_read_input_tokens=rnd.choice([0, rnd.randrange(150_000)]),
                inference_geo=rnd.choice(["", "", "us"]),
                client="claude-code",
                status=200,
                streamed=True,
            )
            meter.price(record)
            out.setdefault(model, []).append(usage_to_tuple(record))
    return out


def generate(count: int, seed: int = 7) -> tuple[list[tuple[Any, ...]], int]:
    """Rows for the month and a tenth as many either side; the month's known total."""
    rnd = random.Random(seed)
    pool = shapes(500, rnd)
    # About 150 requests per developer per working day: what Claude Code makes.
    developers = [f"dev{n:04d}@example.com" for n in range(max(1, count // 3_000))]
    teams = [f"team-{n:02d}" for n in range(30)]
    repositories = [f"acme/repo-{n:03d}" for n in range(200)]
    span = MONTH.end_ts - MONTH.start_ts
    rows: list[tuple[Any, ...]] = []
    total = 0
    for n in range(count + count // 5):
        who = rnd.randrange(len(developers))
        # Each developer has a main model and hands small tasks to Haiku.
        draw = rnd.random()
        model = MODELS[who % 6] if draw > 0.3 else "claude-haiku-4-5-20251001"
        row = list(rnd.choice(pool["claude-unreleased-9" if draw < 0.005 else model]))
        if n < count:
            ts = MONTH.start_ts + rnd.random() * span
        elif n % 2:  # up to six days before the month
            ts = MONTH.start_ts - 1 - rnd.random() * 5e5
        else:  # from its end (which is outside: months are half-open)
            ts = MONTH.end_ts + rnd.random() * 5e5
        row[AT["id"]] = f"{n:016x}"
        row[AT["ts"]] = ts
        row[AT["developer"]] = developers[who]
        row[AT["team"]] = teams[who % len(teams)]
        row[AT["cost_centre"]] = f"CC-{who % 12:04d}"
        # A developer works in a few repositories, not in all of them.
        row[AT["repository"]] = repositories[(who * 7 + rnd.randrange(3)) % len(repositories)]
        row[AT["session_id"]] = f"{who}-{int(ts // 14_400)}"  # a session: 4 hours of one developer
        if n < count and row[AT["cost_micros"]] is not None:
            total += row[AT["cost_micros"]]
        rows.append(tuple(row))
    # The spool delivers records in time order; the table grows that way too.
    rows.sort(key=lambda row: row[AT["ts"]])
    return rows, total


def load_sqlite(path: Path, rows: list[tuple[Any, ...]]) -> None:
    marks = ", ".join("?" for _ in COLUMNS)
    sql = f"INSERT INTO usage_records ({', '.join(COLUMNS)}) VALUES ({marks})"  # noqa: S608
    conn = sqlite3.connect(path)
    try:
        with conn:
            conn.executemany(sql, rows)
    finally:
        conn.close()


async def load_postgres(url: str, rows: list[tuple[Any, ...]]) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table("usage_records", records=rows, columns=COLUMNS)
        await conn.execute("ANALYZE usage_records")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def throwaway_postgres(admin_url: str) -> AsyncIterator[str]:
    url = make_url(normalize_database_url(admin_url))
    admin_dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"gatehouse_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def best(work: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await work()
        times.append(time.perf_counter() - started)
    return min(times), result


async def measure(db: Database, expected_total: int, repeat: int) -> dict[str, Any]:
    start, end = MONTH.start_ts, MONTH.end_ts
    timings: dict[str, float] = {}
    total = None
    for by in Dimension:
        seconds, grouped = await best(lambda by=by: reports.rollup(db, start, end, by), repeat)
        rows = grouped.rows
        timings[f"rollup --by {by.value}"] = seconds
        total = sum(r.cost_micros for r in rows)
        shown = f"rollup --by {by.value}"
        print(f"  {shown:<38} {seconds:6.2f} s  {len(rows):>7,} rows  {_verdict(seconds)}")
    others = {
        "report --by team (+ seed figures)": lambda: chargeback_report(db, MONTH, "team"),
        "report --by model (+ seed figures)": lambda: chargeback_report(db, MONTH, "model"),
        "daily rollup": lambda: reports.daily(db, start, end),
        "export focus (grouped read + file)": lambda: chargeback_export(
            db, MONTH, ExportFormat.FOCUS
        ),
    }
    for name, work in others.items():
        seconds, _ = await best(work, repeat)
        timings[name] = seconds
        # The 2 s target is for rollups; an export is a finance file, timed for reference.
        verdict = "(no target)" if name.startswith("export") else _verdict(seconds)
        print(f"  {name:<38} {seconds:6.2f} s  {verdict}")
    print(f"  month total: computed {total:,} µ$, generated {expected_total:,} µ$", end="")
    print("  equal" if total == expected_total else "  DIFFERENT")
    invoice = load_invoice()
    report = await chargeback_report(db, month(invoice.month), "model")
    got = report.total.cost_micros
    print(
        f"  invoice {invoice.month}: by hand {invoice.total_micros:,} µ$, report {got:,} µ$", end=""
    )
    print("  equal" if got == invoice.total_micros else "  DIFFERENT")
    return {
        "seconds": timings,
        "month_total_equal": total == expected_total,
        "invoice_equal": got == invoice.total_micros,
        "invoice_micros": got,
    }


def _verdict(seconds: float) -> str:
    return f"{'ok' if seconds <= TARGET_S else 'OVER'} (target {TARGET_S:.0f} s)"


async def run_engine(url: str, load: Callable[[], Any], expected: int, repeat: int) -> Any:
    db = await Database.open(url)  # creates the schema
    try:
        started = time.perf_counter()
        await load()
        await db.insert_usage(load_invoice().records)
        print(f"  loaded in {time.perf_counter() - started:.1f} s")
        return await measure(db, expected, repeat)
    finally:
        await db.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    rows, expected = generate(args.records)
    print(
        f"generated {len(rows):,} records ({args.records:,} in {MONTH.label}) "
        f"in {time.perf_counter() - started:.1f} s"
    )
    results: dict[str, Any] = {"records": args.records}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        print(f"\nSQLite {path}")

        async def sqlite_load() -> None:
            await asyncio.to_thread(load_sqlite, path, rows)

        results["sqlite"] = await run_engine(
            f"sqlite+aiosqlite:///{path}", sqlite_load, expected, args.repeat
        )
    if args.postgres:
        async with throwaway_postgres(args.postgres) as url:
            print(f"\nPostgreSQL {make_url(url).render_as_string(hide_password=True)}")
            results["postgresql"] = await run_engine(
                url, lambda: load_postgres(url, rows), expected, args.repeat
            )
    else:
        print("\nPostgreSQL: skipped (give --postgres URL or GATEHOUSE_TEST_POSTGRES_URL)")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("GATEHOUSE_TEST_POSTGRES_URL", ""))
    args = parser.parse_args()
    results = asyncio.run(main_async(args))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rollup.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    engines = [k for k in ("sqlite", "postgresql") if k in results]
    if not all(results[k]["invoice_equal"] and results[k]["month_total_equal"] for k in engines):
        sys.exit(1)


if __name__ == "__main__":
    main()
