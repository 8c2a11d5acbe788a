"""Usage → micro-dollars: worked examples by hand, and the properties finance relies on."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from gatehouse.ledger.cost import Cost, Rollup, cost_micros, cost_of, price_record, rollup
from gatehouse.ledger.prices import Price, load_price_table
from gatehouse.ledger.usage import UsageRecord

TABLE = load_price_table()  # pure data, read once for the module
NOW = datetime(2026, 11, 27, tzinfo=UTC).timestamp()


def price(model: str) -> Price:
    found = TABLE.lookup(model, NOW)
    assert found is not None
    return found


def usage(
    input: int = 0,
    output: int = 0,
    read: int = 0,
    five: int = 0,
    hour: int = 0,
    unsplit: int = 0,
    model: str = "",
) -> UsageRecord:
    return UsageRecord(
        ts=NOW,
        model_served=model,
        input_tokens=input,
        output_tokens=output,
        cache_read_input_tokens=read,
        cache_creation_input_tokens=unsplit or five + hour,
        cache_creation_5m_tokens=five,
        cache_creation_1h_tokens=hour,
    )


# Worked examples. Rates are $/Mtok, so tokens × rate is micro-dollars.


def test_opus_5_5_reads_cache_at_a_twentieth_of_input() -> None:
    record = usage(input=1_000, output=2_000, read=100_000, five=10_000, hour=5_000)
    cost = price_record(record, price("claude-opus-5-5"))
    # 1,000×4 + 2,000×20 + 100,000×0.20 + 10,000×5 + 5,000×8
    assert (cost.input, cost.output, cost.cache_read) == (4_000, 40_000, 20_000)
    assert (cost.cache_write_5m, cost.cache_write_1h) == (50_000, 40_000)
    assert cost.micros == 154_000  # $0.154


def test_haiku_5_5_prices_the_whole_request_at_the_tier_its_prompt_reaches() -> None:
    haiku = price("claude-haiku-5-5")
    # prompt exactly 100,000: base tier. 50,000×0.10 + 50,000×0.01 + 1,000×0.50
    assert cost_micros(usage(input=50_000, read=50_000, output=1_000), haiku) == 6_000
    # prompt 100,001: every token at the higher tier.
    # 50,001×0.50 + 50,000×0.05 + 1,000×2.50 = 25,000.5 + 2,500 + 2,500 = 30,000.5 → 30,001
    cost = price_record(usage(input=50_001, read=50_000, output=1_000), haiku)
    assert cost.exact == Decimal("30000.5")
    assert cost.micros == 30_001
    assert cost.tier == 100_000


def test_sonnet_4_5_long_context_stacks_cache_multipliers_on_6_and_22_50() -> None:
    sonnet = price("claude-sonnet-4-5")
    # prompt 10,000 + 180,000 + 20,000 = 210,000 > 200K:
    # 10,000×6 + 180,000×0.60 + 20,000×7.50 + 5,000×22.50
    long = price_record(usage(input=10_000, read=180_000, five=20_000, output=5_000), sonnet)
    assert long.micros == 60_000 + 108_000 + 150_000 + 112_500 == 430_500
    assert long.tier == 200_000
    # prompt exactly 200,000: standard rates. 10,000×3 + 170,000×0.30 + 20,000×3.75 + 5,000×15
    standard = usage(input=10_000, read=170_000, five=20_000, output=5_000)
    assert cost_micros(standard, sonnet) == 30_000 + 51_000 + 75_000 + 75_000 == 231_000
    # the 1-hour writes count towards the prompt too
    assert price_record(usage(input=200_000, hour=1), sonnet).micros == 1_200_012


def test_inference_geo_us_is_1_1x_for_4_6_and_later_only() -> None:
    record = usage(input=1_000, output=1_000)
    assert cost_micros(record, price("claude-opus-4-6")) == 30_000
    assert cost_micros(record, price("claude-opus-4-6"), inference_geo="us") == 33_000
    assert cost_micros(record, price("claude-opus-4-6"), inference_geo="global") == 30_000
    assert cost_micros(record, price("claude-sonnet-4-5"), inference_geo="us") == 18_000
    # 7×0.10×1.1 = 0.77 → 1: the multiplier applies before the one rounding
    assert cost_micros(usage(input=7), price("claude-haiku-5-5"), inference_geo="us") == 1


def test_unsplit_cache_writes_are_priced_at_the_5_minute_rate() -> None:
    opus = price("claude-opus-5-5")
    assert cost_micros(usage(unsplit=1_000), opus) == 5_000
    # split reported but short of the total: the rest is 5-minute
    partial = usage(unsplit=1_000, hour=400)
    assert price_record(partial, opus).cache_write_5m == 600 * 5
    assert price_record(partial, opus).cache_write_1h == 400 * 8


def test_a_dated_price_change_applies_from_its_date(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "models:\n  claude-opus-5-5:\n    prices:\n"
        "      - {effective_from: 2027-01-01, input: '3', output: '15',"
        " cache_write_5m: '3.75', cache_write_1h: '6', cache_read: '0.15'}\n"
    )
    table = load_price_table(path)
    record = usage(input=1_000, output=1_000, model="claude-opus-5-5")
    record.ts = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp()
    assert cost_of(record, table).micros == 24_000
    record.ts = datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert cost_of(record, table).micros == 18_000


def test_an_unknown_model_is_unknown_never_zero() -> None:
    cost = cost_of(usage(input=1_000, output=1_000, model="claude-unknown-9"), TABLE)
    assert cost.unknown
    assert cost.micros is None
    assert cost.model == "claude-unknown-9"
    total = rollup([cost, price_record(usage(input=1), price("claude-opus-5-5"))])
    assert total == Rollup(micros=4, records=2, unknown=1)


def test_cost_of_looks_up_bedrock_ids_at_the_record_time() -> None:
    record = usage(input=1_000, model="us.anthropic.claude-sonnet-4-5-20250929-v1:0")
    cost = cost_of(record, TABLE, inference_geo="us")
    assert (cost.model, cost.micros) == ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", 3_000)


def test_claude_codes_own_figure_for_a_real_run() -> None:
    # run2_latest_tool_use/claude_stdout.json (Claude Code 2.1.332, Opus 5.5):
    # usage input 32, output 37, no cache; total_cost_usd 0.0008680000000000001.
    record = usage(input=32, output=37)
    assert cost_micros(record, price("claude-opus-5-5")) == 868
    assert round(0.0008680000000000001 * 1_000_000) == 868


# Properties.

tokens = st.integers(min_value=0, max_value=2_000_000)
geos = st.sampled_from(["", "us", "global", "eu"])
models = st.sampled_from(sorted(TABLE.versions))
UNTIERED = sorted(m for m, v in TABLE.versions.items() if not v[-1].tiers)


@st.composite
def records(draw: st.DrawFn) -> UsageRecord:
    five, hour = draw(tokens), draw(tokens)
    if draw(st.booleans()):
        return usage(draw(tokens), draw(tokens), draw(tokens), five=five, hour=hour)
    return usage(draw(tokens), draw(tokens), draw(tokens), unsplit=five)


@given(records(), models, geos)
def test_cost_is_never_negative_and_rounds_once(record: UsageRecord, model: str, geo: str) -> None:
    cost = price_record(record, price(model), inference_geo=geo)
    assert cost.micros is not None
    assert cost.micros >= 0
    assert min(cost.input, cost.output, cost.cache_read, cost.cache_write_5m) >= 0
    assert abs(cost.micros - cost.exact) <= Decimal("0.5")


COUNTS = (
    "input_tokens",
    "output_tokens",
    "cache_read_input_tokens",
    "cache_creation_5m_tokens",
    "cache_creation_1h_tokens",
)


def split(record: UsageRecord, fraction: float) -> tuple[UsageRecord, UsageRecord]:
    """Two records whose token counts add up to ``record``'s, each consistent in itself."""
    first = {name: int(getattr(record, name) * fraction) for name in COUNTS}
    if record.cache_creation_5m_tokens or record.cache_creation_1h_tokens:
        written = first["cache_creation_5m_tokens"] + first["cache_creation_1h_tokens"]
    else:
        written = int(record.cache_creation_input_tokens * fraction)
    first["cache_creation_input_tokens"] = written
    second = {name: getattr(record, name) - n for name, n in first.items()}
    return replace(record, **first), replace(record, **second)


@given(records(), st.sampled_from(UNTIERED), geos, st.floats(min_value=0, max_value=1))
def test_cost_is_additive_over_splitting_a_record(
    record: UsageRecord, model: str, geo: str, fraction: float
) -> None:
    first, second = split(record, fraction)
    whole = price_record(record, price(model), inference_geo=geo)
    a = price_record(first, price(model), inference_geo=geo)
    b = price_record(second, price(model), inference_geo=geo)
    assert whole.exact == a.exact + b.exact  # exact values add exactly
    assert whole.micros is not None and a.micros is not None and b.micros is not None
    assert abs(whole.micros - (a.micros + b.micros)) <= 1  # each record rounds once, by ≤ ½


@given(st.integers(0, 100_000), st.integers(0, 100_000), st.floats(0, 1), geos)
def test_cost_is_additive_within_a_tier(input: int, read: int, fraction: float, geo: str) -> None:
    haiku = price("claude-haiku-5-5")
    record = usage(input=input, read=read, output=input)
    first, second = split(record, fraction)
    whole = price_record(record, haiku, inference_geo=geo)
    a, b = (price_record(r, haiku, inference_geo=geo) for r in (first, second))
    if whole.tier == a.tier == b.tier:
        assert whole.exact == a.exact + b.exact


@given(st.lists(st.tuples(st.sampled_from("abc"), records(), models, geos), max_size=40))
def test_rollups_conserve_the_sum_of_record_costs(
    rows: list[tuple[str, UsageRecord, str, str]],
) -> None:
    costs = [(team, price_record(r, price(m), inference_geo=g)) for team, r, m, g in rows]
    costs.append(("c", Cost(model="claude-unknown-9", micros=None)))
    by_team = {team: rollup(c for t, c in costs if t == team) for team in "abc"}
    total = rollup(c for _, c in costs)
    assert total.micros == sum(c.micros or 0 for _, c in costs)
    assert by_team["a"] + by_team["b"] + by_team["c"] == total
    assert (total.records, total.unknown) == (len(costs), 1)
