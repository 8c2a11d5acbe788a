"""`gatehouse budget …` on a SQLite data directory: what engineering managers type."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from gatehouse.cli.main import app
from gatehouse.events import Event
from gatehouse.ledger.alerts import BUDGET_CHANGED, BUDGET_EXCEPTION_GRANTED
from gatehouse.ledger.usage import UsageRecord
from gatehouse.store.db import Database


@pytest.fixture
def gatehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in list(os.environ):
        if name.startswith("GATEHOUSE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GATEHOUSE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["budget", *args])
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    return run


def database_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'data' / 'gatehouse.db'}"


async def events(tmp_path: Path) -> list[Event]:
    db = await Database.open(database_url(tmp_path))
    try:
        return list(reversed(await db.query_events()))
    finally:
        await db.close()


def test_set_list_grant_and_remove(gatehouse, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    said = gatehouse("set", "--team", "payments", "--monthly", "2,000", "--daily", "150")
    assert "team payments: $2,000.00 monthly, $150.00 daily; alert at 80%, pause at 110%" in said
    gatehouse("set", "--team", "payments", "--monthly", "1000", "--soft", "75%", "--by", "em@x.io")
    asyncio.run(_spend(tmp_path, team="payments", micros=800_000_000))
    said = gatehouse(
        "exception", "--team", "payments", "--amount", "$500", "--until", "2099-01-31",
        "--reason", "launch week", "--by", "em@x.io",
    )  # fmt: skip
    assert "+$500.00 until 2099-02-01 00:00 UTC, granted by em@x.io (launch week)" in said
    assert "Limits now: $1,500.00 monthly, $650.00 daily." in said
    [row] = [orjson.loads(line) for line in gatehouse("list", "--json").splitlines()]
    assert (row["scope"], row["name"], row["soft"], row["hard"]) == (
        "team",
        "payments",
        "75%",
        "110%",
    )
    assert row["daily_micros"] == 150_000_000  # kept: --daily was left out the second time
    assert row["monthly"]["spend_micros"] == 800_000_000
    assert row["monthly"]["limit_micros"] == 1_500_000_000
    assert row["daily"]["state"] == "paused"  # $800 today against $650: the day is over
    assert row["state"] == "paused"
    assert [e["reason"] for e in row["exceptions"]] == ["launch week"]
    table = gatehouse("list")
    assert "team payments" in table and "paused" in table
    assert "Removed the budget for team payments." in gatehouse("remove", "--team", "payments")
    gatehouse("remove", "--team", "payments", code=1)
    assert gatehouse("list", "--json") == ""
    kinds = [(e.kind, e.team) for e in asyncio.run(events(tmp_path))]
    assert kinds == [
        (BUDGET_CHANGED, "payments"),
        (BUDGET_CHANGED, "payments"),
        (BUDGET_EXCEPTION_GRANTED, "payments"),
        (BUDGET_CHANGED, "payments"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", "--monthly", "5"], "name exactly one of"),
        (["set", "--team", "a", "--developer", "b@x.io", "--monthly", "5"], "exactly one"),
        (["set", "--developer", "bob", "--monthly", "5"], "email address"),
        (["set", "--team", "a", "--monthly", "five"], "cannot read --monthly"),
        (["set", "--team", "a", "--monthly", "0.0000001"], "finer than a micro-dollar"),
        (["set", "--team", "a", "--monthly", "5", "--soft", "1.2"], "must be above 0 and below"),
        (["set", "--team", "a", "--monthly", "5", "--webhook", "hooks"], "http(s) URL"),
        (
            ["exception", "--team", "nobody", "--amount", "5", "--until", "2099-01-01",
             "--reason", "x"],
            "set one first",
        ),
        (
            ["exception", "--team", "a", "--amount", "5", "--until", "2001-01-01",
             "--reason", "x"],
            "in the past",
        ),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(gatehouse, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    said = gatehouse(*args, code=2)
    assert message in said
    assert said.startswith("error:")


async def _spend(tmp_path: Path, *, team: str, micros: int) -> None:
    db = await Database.open(database_url(tmp_path))
    try:
        await db.insert_usage([UsageRecord(team=team, cost_micros=micros)])
    finally:
        await db.close()
