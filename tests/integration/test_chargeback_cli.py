"""`gatehouse chargeback report|export` and `gatehouse prices` over a real SQLite ledger.

The ledger holds the hand-computed invoice of tests/fixtures/invoice.yaml; every
figure below follows from the arithmetic written there.
"""

from __future__ import annotations

import asyncio
import csv
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from gatehouse.cli.main import app
from gatehouse.ledger.rollups import Dimension
from gatehouse.settings import Settings
from gatehouse.store.db import Database
from tests.invoice import Invoice, load_invoice

INVOICE_USD = Decimal("0.700181")


@pytest.fixture
def invoice(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoice:
    """The invoice's records in a fresh SQLite ledger that the CLI reads from the environment."""
    for name in ("GATEHOUSE_CONFIG", "GATEHOUSE_DATABASE_URL", "GATEHOUSE_PRICE_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEHOUSE_DATA_DIR", str(tmp_path / "data"))
    loaded = load_invoice()

    async def insert() -> None:
        db = await Database.open(Settings.load().resolved_database_url)
        try:
            await db.insert_usage(loaded.records)
        finally:
            await db.close()

    asyncio.run(insert())
    return loaded


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def report(*args: str) -> dict[str, Any]:
    document = orjson.loads(run("chargeback", "report", *args, "--json").stdout)
    assert isinstance(document, dict)
    return document


def test_the_month_total_is_the_hand_computed_invoice(invoice: Invoice) -> None:
    document = report("--month", "2026-11", "--by", "team")
    total = document["total"]
    assert total["cost_micros"] == invoice.total_micros == 700_181
    assert total["cost_usd"] == "0.700181"
    assert total["records"] == 8  # October's and December's records are outside
    assert total["unpriced"] == 1  # claude-unreleased-9: counted, not priced at zero
    assert total["developers"] == 4
    by_team = {row["key"]: row["cost_micros"] for row in document["rows"]}
    # payments: 167,500 + 207,500 + 33,000; platform: 100,110 + 154,000; search: 7,571 + 30,500
    assert by_team == {"payments": 408_000, "platform": 254_110, "search": 38_071}
    assert [row["key"] for row in document["rows"]] == ["payments", "platform", "search"]


def test_the_seed_figures_follow_from_the_invoice(invoice: Invoice) -> None:
    stats = report("--month", "2026-11", "--by", "developer")["stats"]
    # alice 375,000; bob 38,071; carol 133,110; dave 154,000 (his unpriced record adds 0)
    assert stats["developers"] == 4
    assert stats["median_micros"] == 143_555  # (133,110 + 154,000) / 2
    assert stats["p90_micros"] == 375_000  # nearest rank ceil(3.6) = 4th
    assert stats["top_decile_developers"] == 1
    assert stats["top_decile_micros"] == stats["top_decile_threshold_micros"] == 375_000
    assert stats["per_developer_micros"] == 175_045  # 700,181 / 4 = 175,045.25
    # October: alice 30,000 and bob 10,000, so 20,000 per active developer.
    assert stats["previous_developers"] == 2
    assert stats["previous_per_developer_micros"] == 20_000
    assert stats["month_over_month"] == pytest.approx((175_045 - 20_000) / 20_000)


@pytest.mark.parametrize("by", [d.value for d in Dimension])
def test_every_grouping_adds_up_to_the_invoice(invoice: Invoice, by: str) -> None:
    document = report("--month", "2026-11", "--by", by)
    rows = document["rows"]
    assert sum(row["cost_micros"] for row in rows) == invoice.total_micros
    assert sum(row["records"] for row in rows) == 8
    assert sum(row["unpriced"] for row in rows) == 1


def test_the_model_is_the_one_that_served_the_request(invoice: Invoice) -> None:
    rows = {row["key"]: row for row in report("--month", "2026-11", "--by", "model")["rows"]}
    assert rows["claude-opus-5-5"]["cost_micros"] == 154_000
    assert "opus" not in rows
    assert rows["claude-unreleased-9"]["unpriced"] == 1
    assert rows["claude-unreleased-9"]["cost_micros"] == 0
    assert rows["claude-opus-4-6"]["cache_write_1h_tokens"] == 16_000


def test_a_report_for_one_team(invoice: Invoice) -> None:
    document = report("--month", "2026-11", "--by", "repository", "--team", "search")
    assert document["total"]["cost_micros"] == 38_071  # 7,571 + 30,500
    assert [row["key"] for row in document["rows"]] == ["acme/search"]


def test_a_day_is_a_utc_day(invoice: Invoice) -> None:
    assert report("--day", "2026-11-10")["total"]["cost_micros"] == 7_571  # at 23:59:59
    assert report("--day", "2026-11-30")["total"]["cost_micros"] == 154_000  # at 23:59:59.999
    assert report("--day", "2026-11-11")["total"]["records"] == 0


def test_daily_totals_add_up_to_the_month(invoice: Invoice) -> None:
    days = report("--month", "2026-11", "--daily")["days"]
    assert [d["day"] for d in days][:2] == ["2026-11-02", "2026-11-03"]
    assert sum(d["cost_micros"] for d in days) == invoice.total_micros
    assert sum(d["records"] for d in days) == 8


def test_the_table_shows_the_total_and_the_figures(invoice: Invoice) -> None:
    result = run("chargeback", "report", "--month", "2026-11", "--by", "team", "--daily")
    assert "$0.700181" in result.stdout
    assert "total" in result.stdout
    assert "Active developers: 4" in result.stdout
    assert "median $0.143555, P90 $0.375000" in result.stdout
    assert "Per day (UTC)" in result.stdout
    assert "not in any cost above: 1 record whose model has no price" in result.stderr


def test_an_empty_month_says_so(invoice: Invoice) -> None:
    result = run("chargeback", "report", "--month", "2025-01")
    assert "No developer used Gatehouse in 2025-01." in result.stdout
    assert report("--month", "2025-01")["total"]["cost_micros"] == 0


def test_the_csv_export_sums_to_the_invoice(invoice: Invoice, tmp_path: Path) -> None:
    target = tmp_path / "november.csv"
    result = run("chargeback", "export", "--month", "2026-11", "--output", str(target))
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert sum(Decimal(r["cost_usd"]) for r in rows) == INVOICE_USD
    assert sum(int(r["records"]) for r in rows) == 8
    assert {r["model"] for r in rows if r["unpriced_records"] != "0"} == {"claude-unreleased-9"}
    assert "$0.700181" in result.stderr
    assert "warning: not in the cost columns: 1 record (10,000 tokens)" in result.stderr
    assert result.stdout == ""


def test_the_focus_export_sums_to_the_invoice(invoice: Invoice) -> None:
    result = run("chargeback", "export", "--month", "2026-11", "--format", "focus")
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert sum(Decimal(r["BilledCost"]) for r in rows) == INVOICE_USD
    assert sum(Decimal(r["EffectiveCost"]) for r in rows) == INVOICE_USD
    assert len(rows) == 7  # one per priced (day, developer, team, repository, model)
    assert {r["ChargePeriodStart"][:10] for r in rows} >= {"2026-11-02", "2026-11-30"}
    assert "claude-unreleased-9" not in result.stdout
    assert "1 record (10,000 tokens) whose model has no price" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--month", "2026-13"], "error: --month must be a month as YYYY-MM"),
        (["report", "--by", "org"], "error: --by must be one of team|developer|"),
        (["report", "--day", "2026-11-31"], "error: --day must be a date as YYYY-MM-DD"),
        (["report", "--month", "2026-11", "--day", "2026-11-01"], "error: give --month or --day"),
        (["export", "--format", "xlsx"], "error: --format must be csv or focus"),
        (["export", "--month", "11/2026"], "error: --month must be a month as YYYY-MM"),
        (["report", "--month", "[/x]"], "error: --month must be a month as YYYY-MM (got '[/x]')"),
    ],
)
def test_bad_input_is_one_line_and_exit_status_2(
    invoice: Invoice, args: list[str], message: str
) -> None:
    result = run("chargeback", *args, code=2)
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_an_unwritable_output_is_refused(invoice: Invoice, tmp_path: Path) -> None:
    target = tmp_path / "missing" / "out.csv"
    result = run("chargeback", "export", "--output", str(target), code=2)
    assert result.stderr.startswith(f"error: cannot write {target}")


def test_prices_show_the_packaged_table(invoice: Invoice) -> None:
    document = orjson.loads(run("prices", "--json").stdout)
    assert document["operator_file"] is None
    models = {m["model"]: m for m in document["models"]}
    (opus,) = models["claude-opus-4-6"]["prices"]
    assert (opus["input"], opus["output"], opus["cache_write_1h"]) == ("5", "25", "10")
    assert opus["inference_geo"] == {"us": "1.1"}
    assert opus["in_effect"] is True
    assert models["claude-haiku-5-5"]["prices"][0]["tiers"][0]["above_prompt_tokens"] == 100_000
    assert "claude-sonnet-4-5" in models["claude-sonnet-4-5-20250929"]["aliases"]
    table = run("prices").stdout
    assert "claude-opus-4-6" in table
    assert "prompt > 100,000" in table


def test_prices_merge_the_operator_file(
    invoice: Invoice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = tmp_path / "prices.yaml"
    own.write_text(
        "models:\n"
        "  claude-opus-4-6:\n"
        "    prices:\n"
        '      - {effective_from: 2099-01-01, input: "4", output: "20", cache_write_5m: "5",\n'
        '         cache_write_1h: "8", cache_read: "0.40"}\n'
        "  acme-internal-1:\n"
        "    prices:\n"
        '      - {effective_from: 2025-01-01, input: "1", output: "2", cache_write_5m: "1",\n'
        '         cache_write_1h: "1", cache_read: "0.1"}\n'
    )
    monkeypatch.setenv("GATEHOUSE_PRICE_FILE", str(own))
    document = orjson.loads(run("prices", "--json").stdout)
    models = {m["model"]: m for m in document["models"]}
    assert document["operator_file"] == str(own)
    assert "acme-internal-1" in models
    dated = models["claude-opus-4-6"]["prices"]
    assert [(p["effective_from"], p["in_effect"]) for p in dated] == [
        ("2025-01-01", True),
        ("2099-01-01", False),
    ]


def test_a_broken_price_file_is_one_line(
    invoice: Invoice, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broken = tmp_path / "prices.yaml"
    broken.write_text(
        "models:\n  x:\n    prices:\n      - {effective_from: 2025-01-01, input: 0.1}\n"
    )
    monkeypatch.setenv("GATEHOUSE_PRICE_FILE", str(broken))
    result = run("prices", code=2)
    assert result.stderr.startswith("error: price table")
    assert "Traceback" not in result.stderr
