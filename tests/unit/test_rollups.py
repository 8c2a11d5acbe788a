"""Rollups and the seed figures: sums conserved, unknown cost never zero, percentiles by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatehouse.errors import InvalidRequest
from gatehouse.ledger.rollups import (
    Dimension,
    ReportRow,
    aggregate,
    build_report,
    day,
    decimal_usd,
    developer_stats,
    dimension_value,
    fold,
    month,
    nearest_rank,
    parse_dimension,
)
from gatehouse.ledger.usage import UsageRecord

NOV = month("2026-11")

# -- periods and parsing ------------------------------------------------------------


def test_a_month_is_the_half_open_utc_calendar_month() -> None:
    assert NOV.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert NOV.end == datetime(2026, 12, 1, tzinfo=UTC)
    assert month("2026-12").end == datetime(2027, 1, 1, tzinfo=UTC)
    assert month("2028-02").days()[-1] == date(2028, 2, 29)
    assert len(NOV.days()) == 30
    assert NOV.is_month


def test_the_previous_month_crosses_the_year() -> None:
    assert month("2027-01").previous_month().label == "2026-12"
    assert day("2026-03-15").previous_month().label == "2026-02"


@pytest.mark.parametrize(
    "bad", ["2026-13", "2026-00", "2026-1", "26-11", "2026/11", "2026-+1", "2_26-11", "", "nov"]
)
def test_a_malformed_month_is_refused_with_the_format(bad: str) -> None:
    with pytest.raises(InvalidRequest, match=r"--month must be a month as YYYY-MM"):
        month(bad, "--month")


@pytest.mark.parametrize("bad", ["2026-02-30", "2026-11", "2026-11-1", "2026-W45-3", "tomorrow"])
def test_a_malformed_day_is_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest, match=r"day must be a date as YYYY-MM-DD"):
        day(bad)


def test_a_day_is_one_utc_day() -> None:
    period = day("2026-11-05")
    assert period.end_ts - period.start_ts == 86_400
    assert not period.is_month


@pytest.mark.parametrize(
    ("spelling", "dimension"),
    [
        ("team", Dimension.TEAM),
        ("Cost-Centre", Dimension.COST_CENTRE),
        ("cost_center", Dimension.COST_CENTRE),
        ("model", Dimension.MODEL),
        ("session", Dimension.SESSION),
    ],
)
def test_dimensions_accept_their_spellings(spelling: str, dimension: Dimension) -> None:
    assert parse_dimension(spelling) is dimension


def test_an_unknown_dimension_names_the_choices() -> None:
    with pytest.raises(InvalidRequest, match=r"--by must be one of team\|developer\|"):
        parse_dimension("org", "--by")


def test_the_model_is_the_served_one_else_the_requested_one() -> None:
    served = UsageRecord(model_requested="opus", model_served="claude-opus-4-6")
    refused = UsageRecord(model_requested="opus")
    assert dimension_value(served, Dimension.MODEL) == "claude-opus-4-6"
    assert dimension_value(refused, Dimension.MODEL) == "opus"
    assert dimension_value(UsageRecord(cost_centre="CC-1"), Dimension.COST_CENTRE) == "CC-1"


@pytest.mark.parametrize(
    ("micros", "text"),
    [(0, "0.000000"), (1, "0.000001"), (154_000, "0.154000"), (12_345_678, "12.345678")],
)
def test_usd_is_exact(micros: int, text: str) -> None:
    assert decimal_usd(micros) == text


# -- the seed figures, by hand ------------------------------------------------------


def test_seed_figures_for_ten_developers() -> None:
    spend = [100, 200, 300, 400, 500, 600, 700, 800, 900, 1_000]
    stats = developer_stats(spend, previous_spend=[300, 500])
    assert stats.developers == 10
    assert stats.median_micros == 550  # (500 + 600) / 2
    assert stats.p90_micros == 900  # nearest rank: ceil(0.9 × 10) = 9th
    assert stats.top_decile_developers == 1
    assert stats.top_decile_micros == 1_000
    assert stats.top_decile_threshold_micros == 1_000
    assert stats.top_decile_share == pytest.approx(1_000 / 5_500)
    assert stats.per_developer_micros == 550  # 5,500 / 10
    assert stats.previous_per_developer_micros == 400  # 800 / 2
    assert stats.month_over_month == pytest.approx(0.375)  # (550 − 400) / 400


def test_top_decile_of_eleven_developers_is_two() -> None:
    spend = [1] * 9 + [50, 60]
    stats = developer_stats(spend)
    assert stats.top_decile_developers == 2  # ceil(11 / 10)
    assert stats.top_decile_micros == 110
    assert stats.top_decile_threshold_micros == 50
    assert stats.median_micros == 1
    assert stats.month_over_month is None  # nobody last month


def test_halves_round_up_to_a_micro_dollar() -> None:
    assert developer_stats([2, 3]).median_micros == 3  # 2.5
    assert developer_stats([0, 0, 1]).per_developer_micros == 0  # 0.33…
    assert developer_stats([1, 2]).per_developer_micros == 2  # 1.5


def test_no_developers_no_figures() -> None:
    stats = developer_stats([], previous_spend=[10])
    assert stats.developers == 0
    assert stats.top_decile_share is None
    assert stats.previous_per_developer_micros == 10
    assert stats.month_over_month is None


def test_a_report_leaves_records_without_a_developer_out_of_the_figures() -> None:
    rows = [ReportRow(key="payments", cost_micros=30, records=3)]
    report = build_report(NOV, Dimension.TEAM, rows, {"": 5, "a@x": 10, "b@x": 20})
    assert report.stats.developers == 2
    assert report.total.developers == 2
    assert report.to_json()["stats"]["median_micros"] == 15


# -- properties ------------------------------------------------------------------

names = st.sampled_from(["", "a", "b", "c"])
records = st.builds(
    UsageRecord,
    ts=st.floats(NOV.start_ts, NOV.end_ts, exclude_max=True),
    developer=names,
    team=names,
    repository=names,
    session_id=names,
    client=names,
    cost_centre=names,
    model_requested=names,
    model_served=names,
    input_tokens=st.integers(0, 10**7),
    output_tokens=st.integers(0, 10**6),
    cache_creation_input_tokens=st.integers(0, 10**6),
    cache_creation_1h_tokens=st.integers(0, 10**5),
    cache_read_input_tokens=st.integers(0, 10**7),
    cost_micros=st.none() | st.integers(0, 10**9),
)


@given(st.lists(records, max_size=40), st.sampled_from(list(Dimension)))
def test_every_grouping_conserves_the_month_total(batch: list[UsageRecord], by: Dimension) -> None:
    rows = aggregate(batch, by)
    known = [r.cost_micros for r in batch if r.cost_micros is not None]
    assert sum(row.cost_micros for row in rows) == sum(known)
    assert sum(row.records for row in rows) == len(batch)
    assert sum(row.unpriced for row in rows) == len(batch) - len(known)
    assert sum(row.input_tokens for row in rows) == sum(r.input_tokens for r in batch)
    assert len({row.key for row in rows}) == len(rows)
    for row in rows:
        assert row.cost_micros >= 0
        assert 0 <= row.unpriced <= row.records
        assert min(row.cache_write_5m_tokens, row.cache_write_1h_tokens) >= 0
        assert 1 <= row.developers <= row.records
    report = build_report(NOV, by, rows, {})
    assert report.total.cost_micros == sum(known)
    assert report.to_json()["total"]["cost_usd"] == decimal_usd(sum(known))


@given(st.lists(records, max_size=30))
def test_an_unpriced_record_adds_nothing_and_is_counted(batch: list[UsageRecord]) -> None:
    unpriced = UsageRecord(team="t", cost_micros=None, input_tokens=1000)
    before = aggregate(batch, Dimension.TEAM)
    after = aggregate([*batch, unpriced], Dimension.TEAM)
    assert sum(r.cost_micros for r in after) == sum(r.cost_micros for r in before)
    assert sum(r.unpriced for r in after) == sum(r.unpriced for r in before) + 1


@given(
    st.lists(st.integers(0, 10**10), max_size=60),
    st.lists(st.integers(0, 10**10), max_size=20),
)
def test_seed_figures_are_ordered_and_never_negative(spend: list[int], previous: list[int]) -> None:
    stats = developer_stats(spend, previous)
    if not spend:
        assert stats.developers == 0
        return
    low, high = min(spend), max(spend)
    assert low <= stats.median_micros <= stats.p90_micros <= high
    assert low <= stats.top_decile_threshold_micros <= high
    assert stats.top_decile_micros <= stats.total_micros == sum(spend)
    top = sorted(spend, reverse=True)[: stats.top_decile_developers]
    assert stats.top_decile_micros == sum(top)
    assert low <= stats.per_developer_micros <= high
    share = stats.top_decile_share
    assert share is None or 0 <= share <= 1
    assert nearest_rank(sorted(spend), 100) == high


@given(st.lists(records, max_size=40), st.sampled_from(list(Dimension)))
def test_folding_per_developer_parts_gives_the_same_rollup(
    batch: list[UsageRecord], by: Dimension
) -> None:
    # What the database returns: one part per (value, developer).
    parts = {}
    for record in batch:
        key = (dimension_value(record, by), record.developer)
        parts.setdefault(key, []).append(record)
    grouped = fold((developer, aggregate(group, by)[0]) for (_, developer), group in parts.items())
    assert grouped.rows == aggregate(batch, by)
    spend: dict[str, int] = {}
    for record in batch:
        spend[record.developer] = spend.get(record.developer, 0) + (record.cost_micros or 0)
    assert grouped.developer_spend == spend
