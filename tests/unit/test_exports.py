"""Finance exports: exact money, FOCUS columns, unpriced usage never written as zero."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatehouse.errors import InvalidRequest
from gatehouse.ledger.exports import (
    CSV_COLUMNS,
    FOCUS_COLUMNS,
    ChargeLine,
    ExportFormat,
    export,
    parse_format,
)
from gatehouse.ledger.rollups import ReportRow, month

NOV = month("2026-11")

# The columns FOCUS 1.2 makes mandatory (feature level "Mandatory"), and the
# conditional ones that apply to metered token usage.
FOCUS_12_MANDATORY = {
    "BilledCost",
    "BillingAccountId",
    "BillingAccountName",
    "BillingCurrency",
    "BillingPeriodEnd",
    "BillingPeriodStart",
    "ChargeCategory",
    "ChargeClass",
    "ChargeDescription",
    "ChargePeriodEnd",
    "ChargePeriodStart",
    "ContractedCost",
    "EffectiveCost",
    "InvoiceIssuerName",
    "ListCost",
    "PricingQuantity",
    "PricingUnit",
    "ProviderName",
    "PublisherName",
    "ServiceCategory",
    "ServiceName",
}
FOCUS_12_APPLICABLE = {
    "ChargeFrequency",
    "ConsumedQuantity",
    "ConsumedUnit",
    "PricingCategory",
    "ResourceId",
    "ResourceName",
    "ResourceType",
    "ServiceSubcategory",
    "SkuId",
    "SubAccountId",
    "SubAccountName",
    "Tags",
}


def line(
    *,
    day: int = 1,
    developer: str = "alice@example.com",
    team: str = "payments",
    repository: str = "acme/api",
    model: str = "claude-opus-4-6",
    micros: int = 0,
    records: int = 1,
    priced: bool = True,
    tokens: tuple[int, int, int, int, int] = (1000, 100, 0, 0, 0),
) -> ChargeLine:
    five_in, out, five, hour, read = tokens
    return ChargeLine(
        day=date(2026, 11, day),
        developer=developer,
        team=team,
        repository=repository,
        cost_centre="CC-1",
        model=model,
        priced=priced,
        usage=ReportRow(
            key="",
            cost_micros=micros if priced else 0,
            records=records,
            unpriced=0 if priced else records,
            input_tokens=five_in,
            output_tokens=out,
            cache_write_5m_tokens=five,
            cache_write_1h_tokens=hour,
            cache_read_tokens=read,
            developers=1,
        ),
    )


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_has_one_row_per_developer_team_repository_and_model() -> None:
    lines = [
        line(day=1, micros=154_000),
        line(day=2, micros=1),
        line(day=2, model="claude-unreleased-9", priced=False, records=2),
        line(day=3, repository="acme/web", micros=10),
    ]
    result = export(ExportFormat.CSV, NOV, lines)
    table = rows(result.text)
    assert tuple(table[0]) == CSV_COLUMNS
    assert result.rows == len(table) == 3
    api = next(r for r in table if r["repository"] == "acme/api" and r["unpriced_records"] == "0")
    assert api["cost_usd"] == "0.154001"
    assert api["records"] == "2"
    assert api["input_tokens"] == "2000"
    assert api["month"] == "2026-11"
    unknown = next(r for r in table if r["model"] == "claude-unreleased-9")
    assert unknown["unpriced_records"] == "2"
    assert unknown["cost_usd"] == "0.000000"  # the priced part: none of it
    assert unknown["input_tokens"] == "1000"  # its tokens are still accounted for
    assert result.cost_micros == 154_011
    assert result.unpriced_records == 2


def test_csv_cells_a_spreadsheet_would_run_are_made_inert() -> None:
    result = export(ExportFormat.CSV, NOV, [line(repository="=HYPERLINK(1)", micros=5)])
    assert rows(result.text)[0]["repository"] == "'=HYPERLINK(1)"


def test_focus_rows_carry_the_mandatory_columns() -> None:
    result = export(ExportFormat.FOCUS, NOV, [line(day=30, micros=154_000)])
    (row,) = rows(result.text)
    assert set(row) >= FOCUS_12_MANDATORY | FOCUS_12_APPLICABLE
    # Beyond those: the two unit prices (null, see docs) and custom columns, prefixed x_.
    extra = set(row) - FOCUS_12_MANDATORY - FOCUS_12_APPLICABLE
    assert {c for c in extra if not c.startswith("x_")} == {"ContractedUnitPrice", "ListUnitPrice"}
    assert row["ContractedUnitPrice"] == row["ListUnitPrice"] == ""
    assert row["BilledCost"] == row["EffectiveCost"] == row["ListCost"] == "0.154000"
    assert row["ContractedCost"] == "0.154000"
    assert row["BillingCurrency"] == "USD"
    assert row["BillingPeriodStart"] == "2026-11-01T00:00:00Z"
    assert row["BillingPeriodEnd"] == "2026-12-01T00:00:00Z"
    assert row["ChargePeriodStart"] == "2026-11-30T00:00:00Z"
    assert row["ChargePeriodEnd"] == "2026-12-01T00:00:00Z"
    assert row["ChargeCategory"] == "Usage"
    assert row["ChargeClass"] == ""  # null: not a correction
    assert row["ConsumedQuantity"] == "1100"
    assert row["PricingQuantity"] == "0.001100"
    assert row["PricingUnit"] == "1M Tokens"
    assert row["ServiceCategory"] == "AI and Machine Learning"
    assert row["ProviderName"] == row["PublisherName"] == row["InvoiceIssuerName"] == "Anthropic"
    assert row["SkuId"] == row["ResourceId"] == "claude-opus-4-6"
    assert row["SubAccountId"] == "payments"
    assert orjson.loads(row["Tags"]) == {
        "developer": "alice@example.com",
        "team": "payments",
        "repository": "acme/api",
        "cost-centre": "CC-1",
        "model": "claude-opus-4-6",
    }
    assert row["x_InputTokens"] == "1000"


def test_focus_leaves_unpriced_usage_out_and_says_how_much() -> None:
    lines = [line(micros=7), line(priced=False, records=3, model="claude-unreleased-9")]
    result = export(ExportFormat.FOCUS, NOV, lines)
    assert [r["SkuId"] for r in rows(result.text)] == ["claude-opus-4-6"]
    assert result.unpriced_records == 3
    assert result.unpriced_tokens == 1100
    assert result.cost_micros == 7


def test_focus_has_every_documented_column_in_order() -> None:
    text = export(ExportFormat.FOCUS, NOV, []).text
    assert text.splitlines() == [",".join(FOCUS_COLUMNS)]


def test_export_names_its_file() -> None:
    assert export(ExportFormat.FOCUS, NOV, []).filename == "gatehouse-focus-2026-11.csv"
    assert export(ExportFormat.CSV, NOV, []).filename == "gatehouse-chargeback-2026-11.csv"


def test_an_unknown_format_is_refused() -> None:
    assert parse_format("FOCUS") is ExportFormat.FOCUS
    with pytest.raises(InvalidRequest, match="--format must be csv or focus"):
        parse_format("parquet", "--format")


charge_lines = st.builds(
    line,
    day=st.integers(1, 30),
    developer=st.sampled_from(["a", "b", ""]),
    team=st.sampled_from(["t", "u", ""]),
    repository=st.sampled_from(["r", "-r", ""]),
    model=st.sampled_from(["m1", "m2"]),
    micros=st.integers(0, 10**12),
    records=st.integers(1, 1000),
    priced=st.booleans(),
    tokens=st.tuples(*[st.integers(0, 10**9)] * 5),
)


@given(st.lists(charge_lines, max_size=30))
def test_every_export_sums_to_the_micro_dollar(lines: list[ChargeLine]) -> None:
    known = sum(x.usage.cost_micros for x in lines if x.priced)
    micro = Decimal("0.000001")
    focus = rows(export(ExportFormat.FOCUS, NOV, lines).text)
    assert sum(Decimal(r["BilledCost"]) for r in focus) == known * micro
    assert sum(Decimal(r["EffectiveCost"]) for r in focus) == known * micro
    for r in focus:
        assert Decimal(r["BilledCost"]) >= 0
        assert Decimal(r["PricingQuantity"]) * 10**6 == int(r["ConsumedQuantity"])
    plain = rows(export(ExportFormat.CSV, NOV, lines).text)
    assert sum(Decimal(r["cost_usd"]) for r in plain) == known * micro
    assert sum(int(r["records"]) for r in plain) == sum(x.usage.records for x in lines)
    assert sum(int(r["unpriced_records"]) for r in plain) == sum(
        x.usage.records for x in lines if not x.priced
    )
