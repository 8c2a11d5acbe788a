"""The price table: every current model, exact rates, dated versions, operator files."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path

import pytest

from gatehouse.ledger.prices import PriceTable, load_price_table, normalise_model_id
from gatehouse.settings import SettingsError

# PRICING.md (read 2026-11-27), USD per million tokens:
# id → (input, 5m cache write, 1h cache write, cache read, output)
LIST_PRICES = {
    "claude-fable-5-1": ("10", "12.50", "20", "0.25", "50"),
    "claude-mythos-5-1": ("10", "12.50", "20", "0.25", "50"),
    "claude-fable-5": ("10", "12.50", "20", "1", "50"),
    "claude-mythos-5": ("10", "12.50", "20", "1", "50"),
    "claude-opus-5-5": ("4", "5", "8", "0.20", "20"),
    "claude-opus-5": ("5", "6.25", "10", "0.50", "25"),
    "claude-opus-4-8": ("5", "6.25", "10", "0.50", "25"),
    "claude-opus-4-7": ("5", "6.25", "10", "0.50", "25"),
    "claude-opus-4-6": ("5", "6.25", "10", "0.50", "25"),
    "claude-opus-4-5-20251101": ("5", "6.25", "10", "0.50", "25"),
    "claude-opus-4-1-20250805": ("15", "18.75", "30", "1.50", "75"),
    "claude-opus-4-20250514": ("15", "18.75", "30", "1.50", "75"),
    "claude-sonnet-5-5": ("2", "2.50", "4", "0.10", "10"),
    "claude-sonnet-5": ("2", "2.50", "4", "0.20", "10"),
    "claude-sonnet-4-6": ("3", "3.75", "6", "0.30", "15"),
    "claude-sonnet-4-5-20250929": ("3", "3.75", "6", "0.30", "15"),
    "claude-sonnet-4-20250514": ("3", "3.75", "6", "0.30", "15"),
    "claude-haiku-5-5": ("0.10", "0.125", "0.20", "0.01", "0.50"),
    "claude-haiku-4-5-20251001": ("1", "1.25", "2", "0.10", "5"),
    "claude-3-5-haiku-20241022": ("0.80", "1", "1.60", "0.08", "4"),
}
ALIASES = {
    "claude-opus-4-5": "claude-opus-4-5-20251101",
    "claude-opus-4-1": "claude-opus-4-1-20250805",
    "claude-opus-4-0": "claude-opus-4-20250514",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-sonnet-4-0": "claude-sonnet-4-20250514",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-3-5-haiku-latest": "claude-3-5-haiku-20241022",
}
# Cache reads are 0.1x input except where PRICING.md notes otherwise.
READ_MULTIPLIER = {"claude-opus-5-5": "0.05", "claude-sonnet-5-5": "0.05"}
READ_MULTIPLIER |= {"claude-fable-5-1": "0.025", "claude-mythos-5-1": "0.025"}
GEO_US = {  # Claude 4.6 and later
    "claude-fable-5-1", "claude-mythos-5-1", "claude-fable-5", "claude-mythos-5",
    "claude-opus-5-5", "claude-opus-5", "claude-opus-4-8", "claude-opus-4-7", "claude-opus-4-6",
    "claude-sonnet-5-5", "claude-sonnet-5", "claude-sonnet-4-6", "claude-haiku-5-5",
}  # fmt: skip
NOW = datetime(2026, 11, 27, tzinfo=UTC)


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return load_price_table()


def test_the_table_ships_inside_the_package() -> None:
    packaged = resources.files("gatehouse.ledger").joinpath("prices.yaml")
    assert "claude-opus-5-5" in packaged.read_text(encoding="utf-8")


def test_every_listed_model_has_its_list_prices(table: PriceTable) -> None:
    assert set(table.versions) == set(LIST_PRICES)
    for model, (inp, five, hour, read, out) in LIST_PRICES.items():
        price = table.lookup(model, NOW)
        assert price is not None, model
        rates = price.rates
        got = (rates.input, rates.cache_write_5m, rates.cache_write_1h, rates.cache_read)
        assert (*got, rates.output) == tuple(Decimal(v) for v in (inp, five, hour, read, out))
        assert rates.cache_write_5m == rates.input * Decimal("1.25"), model
        assert rates.cache_write_1h == rates.input * 2, model
        assert rates.cache_read == rates.input * Decimal(READ_MULTIPLIER.get(model, "0.1")), model
        us = Decimal("1.1") if model in GEO_US else Decimal(1)
        assert price.geo_multiplier("us") == us, model
        assert price.geo_multiplier("") == Decimal(1)


@pytest.mark.parametrize(("alias", "model"), ALIASES.items())
def test_aliases_name_the_dated_snapshot(table: PriceTable, alias: str, model: str) -> None:
    assert table.resolve(alias) == model


@pytest.mark.parametrize(
    ("provider_id", "model"),
    [
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929"),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5-20251001"),
        ("anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku-20241022"),
        ("us.anthropic.claude-opus-5-5", "claude-opus-5-5"),
        ("claude-sonnet-4-5@20250929", "claude-sonnet-4-5-20250929"),
        ("claude-opus-5-5", "claude-opus-5-5"),
        (" Claude-Opus-5-5 ", "claude-opus-5-5"),
    ],
)
def test_bedrock_and_vertex_ids_reach_the_same_entry(
    table: PriceTable, provider_id: str, model: str
) -> None:
    assert table.resolve(provider_id) == model


def test_normalisation_rewrites_only_provider_spellings() -> None:
    assert normalise_model_id("claude-sonnet-4-5[1m]") == "claude-sonnet-4-5[1m]"
    assert normalise_model_id("my-proxy-model") == "my-proxy-model"


def test_tiers_are_data(table: PriceTable) -> None:
    haiku = table.lookup("claude-haiku-5-5", NOW)
    assert haiku.rates_for(100_000).input == Decimal("0.10")
    assert haiku.rates_for(100_001).input == Decimal("0.50")
    sonnet = table.lookup("claude-sonnet-4-5", NOW)
    assert sonnet.rates_for(200_000).output == Decimal(15)
    high = sonnet.rates_for(200_001)
    assert (high.input, high.output, high.cache_read) == (
        Decimal(6),
        Decimal("22.50"),
        Decimal("0.60"),
    )
    assert (high.cache_write_5m, high.cache_write_1h) == (Decimal("7.50"), Decimal(12))
    assert table.lookup("claude-sonnet-4-6", NOW).tiers == ()


def test_unknown_models_and_times_before_any_price_have_none(table: PriceTable) -> None:
    assert table.lookup("claude-unknown-9", NOW) is None
    assert table.lookup("claude-sonnet-4-5", datetime(2025, 9, 28, 23, 59, tzinfo=UTC)) is None
    assert table.lookup("claude-sonnet-4-5", datetime(2025, 9, 29, tzinfo=UTC)) is not None


OPERATOR = """
models:
  claude-opus-5-5:            # a dated price change
    prices:
      - {effective_from: 2027-01-01, input: "3", output: "15", cache_write_5m: "3.75",
         cache_write_1h: "6", cache_read: "0.15"}
  claude-sonnet-4-5:          # keyed by an alias: merges into the dated snapshot
    aliases: [sonnet-house]
  acme-internal-model:
    aliases: [acme]
    prices:
      - {effective_from: "2026-01-01", input: 1, output: 2, cache_write_5m: "1.25",
         cache_write_1h: 2, cache_read: "0.1"}
"""


def test_an_operator_file_adds_dated_versions_aliases_and_models(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(OPERATOR)
    table = load_price_table(path)
    before = table.lookup("claude-opus-5-5", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC))
    after = table.lookup("claude-opus-5-5", datetime(2027, 1, 1, tzinfo=UTC))
    assert before is not None and before.rates.input == Decimal(4)
    assert after is not None and after.rates.input == Decimal(3)
    assert table.lookup("claude-opus-5-5", datetime(2027, 1, 1, 1, tzinfo=UTC).timestamp()) == after
    assert table.lookup("claude-opus-5-5", datetime(2027, 1, 1, 1)) == after  # naive is UTC
    assert table.resolve("sonnet-house") == "claude-sonnet-4-5-20250929"
    assert table.resolve("acme") == "acme-internal-model"
    assert table.lookup("acme", NOW).rates.cache_read == Decimal("0.1")


def test_an_operator_version_on_the_same_date_replaces_the_packaged_one(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n  claude-haiku-5-5:\n    prices:\n"
        "      - {effective_from: 2025-01-01, input: '0.08', output: '0.40',"
        " cache_write_5m: '0.10', cache_write_1h: '0.16', cache_read: '0.008'}\n"
    )
    price = load_price_table(path).lookup("claude-haiku-5-5", NOW)
    assert price is not None
    assert price.rates.input == Decimal("0.08")
    assert price.tiers == ()


VERSION = (
    "{effective_from: 2026-01-01, input: '1', output: '2',"
    " cache_write_5m: '1.25', cache_write_1h: '2', cache_read: '0.1'}"
)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "expected a mapping with 'models:'"),
        (
            "models:\n  m1: {prices: [" + VERSION.replace("'0.1'", "0.1") + "]}",
            r"model 'm1', price from 2026-01-01: field 'cache_read': quote 0.1",
        ),
        (
            "models:\n  m1: {prices: [" + VERSION.replace("'2',", "'two',") + "]}",
            r"model 'm1', price from 2026-01-01: field 'output': 'two' is not a number",
        ),
        (
            "models:\n  m1: {prices: [" + VERSION.replace("'1',", "'-1',") + "]}",
            r"field 'input': '-1' must be zero or more",
        ),
        (
            "models:\n  m1: {prices: [" + VERSION.replace(", cache_read: '0.1'", "") + "]}",
            r"model 'm1', price from 2026-01-01: field 'cache_read' is missing",
        ),
        (
            "models:\n  m1: {prices: [" + VERSION.replace("cache_read", "cache_reed") + "]}",
            r"model 'm1': unknown field 'cache_reed'",
        ),
        (
            "models:\n  m1: {prices: [" + VERSION.replace("2026-01-01", "soon") + "]}",
            r"model 'm1': field 'effective_from': expected a date",
        ),
        (
            "models:\n  m1: {prices: [" + VERSION + ", " + VERSION + "]}",
            r"model 'm1': two prices with effective_from 2026-01-01",
        ),
        (
            "models:\n  m1: {aliases: [claude-opus-5], prices: [" + VERSION + "]}",
            r"id 'claude-opus-5' names both 'claude-opus-5' and 'm1'",
        ),
        ("models:\n  m1: {aliases: [x]}", r"model 'm1': field 'prices' is missing"),
        (
            "models:\n  m1: {prices: ["
            + VERSION.replace("}", ", tiers: [{above_prompt_tokens: many}]}")
            + "]}",
            r"model 'm1', price from 2026-01-01: field 'above_prompt_tokens'",
        ),
        ("models: {m1: [", "cannot read it"),
    ],
)
def test_malformed_operator_files_name_the_model_and_field(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(SettingsError, match=message):
        load_price_table(path)


def test_a_missing_operator_file_is_a_settings_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="cannot read it"):
        load_price_table(tmp_path / "absent.yaml")
