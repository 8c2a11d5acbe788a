"""Budgets as pure decisions: money parsing, periods, limits, the guard's pause and alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatehouse.errors import InvalidRequest, RateLimited
from gatehouse.ledger.budgets import (
    Budget,
    BudgetExceeded,
    BudgetException,
    limits,
    parse_ratio,
    parse_until,
    parse_usd,
    period_bounds,
    periods_at,
    threshold,
    usd,
)
from gatehouse.ledger.guard import Alert, BudgetGuard
from gatehouse.ledger.usage import UsageRecord

NOV_27 = datetime(2026, 11, 27, 15, 30, tzinfo=UTC).timestamp()
DEC_1 = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
USD = 1_000_000


def record(cost: int | None, ts: float = NOV_27, **who: str) -> UsageRecord:
    who = {"developer": "ada@example.com", "team": "payments", "repository": "", **who}
    return UsageRecord(ts=ts, cost_micros=cost, **who)


def team_budget(monthly: int = 100 * USD, **kw: object) -> Budget:
    return Budget(scope="team", name="payments", monthly_micros=monthly, **kw)  # type: ignore[arg-type]


def guard_with(
    *budgets: Budget, exceptions: tuple[BudgetException, ...] = ()
) -> tuple[BudgetGuard, list[Alert]]:
    alerts: list[Alert] = []
    guard = BudgetGuard(on_alert=alerts.append)
    guard.load(budgets, exceptions, NOV_27)
    return guard, alerts


# -- money, ratios, dates ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("100", 100 * USD),
        ("$1,250.50", 1_250_500_000),
        ("0.000001", 1),
        ("12.", 12 * USD),
        (".5", USD // 2),
        ("1_000", 1000 * USD),
    ],
)
def test_usd_amounts_are_read_exactly(text: str, micros: int) -> None:
    assert parse_usd(text) == micros


@pytest.mark.parametrize("text", ["0.0000001", "-5", "abc", "", "1e3", "NaN", "$"])
def test_unreadable_or_too_fine_amounts_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_usd(text)


@given(st.integers(min_value=0, max_value=10**15))
def test_any_micro_amount_round_trips(micros: int) -> None:
    assert parse_usd(str(Decimal(micros) / USD)) == micros


def test_usd_is_shown_to_the_cent_or_exactly_when_small() -> None:
    assert usd(1_234_500_000) == "$1,234.50"
    assert usd(10_000) == "$0.01"
    assert usd(4_512) == "$0.004512"
    assert usd(0) == "$0.00"


@pytest.mark.parametrize(("text", "permille"), [("0.8", 800), ("80%", 800), ("1.1", 1100)])
def test_ratios_become_permille(text: str, permille: int) -> None:
    assert parse_ratio(text, what="--soft") == permille


@pytest.mark.parametrize("text", ["0", "abc", "0.8005", "-1"])
def test_bad_ratios_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_ratio(text, what="--soft")


def test_an_exception_date_runs_through_the_end_of_that_day() -> None:
    assert parse_until("2026-11-30", NOV_27) == DEC_1
    assert parse_until("2026-11-28T12:00:00Z", NOV_27) == NOV_27 + 20.5 * 3600
    with pytest.raises(InvalidRequest, match="past"):
        parse_until("2026-11-01", NOV_27)
    with pytest.raises(InvalidRequest, match="YYYY-MM-DD"):
        parse_until("next week", NOV_27)


# -- periods and limits -------------------------------------------------------------


def test_periods_are_utc_months_and_days() -> None:
    periods = periods_at(NOV_27)
    assert (periods.month, periods.day) == ("2026-11", "2026-11-27")
    assert periods.month_end == DEC_1
    assert periods.day_end - periods.day_start == 86400
    december = periods_at(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())
    assert december.month_end == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
    assert periods_at(datetime(2028, 2, 29, tzinfo=UTC).timestamp()).day == "2028-02-29"
    assert period_bounds("2026-11") == (periods.month_start, DEC_1)
    assert period_bounds("2026-11-27") == (periods.day_start, periods.day_end)


@given(st.integers(min_value=1, max_value=10**13), st.integers(min_value=1, max_value=5000))
def test_a_threshold_is_never_below_its_share(limit: int, permille: int) -> None:
    value = threshold(limit, permille)
    assert value * 1000 >= limit * permille > (value - 1) * 1000


def test_budgets_refuse_impossible_settings() -> None:
    with pytest.raises(InvalidRequest, match="below"):
        team_budget(soft_permille=1100, hard_permille=1100)
    with pytest.raises(InvalidRequest, match="more than"):
        team_budget(monthly=0)
    with pytest.raises(InvalidRequest, match="scope"):
        Budget(scope="org", name="x", monthly_micros=1)


def test_only_live_exceptions_raise_the_limit() -> None:
    budget = team_budget(daily_micros=10 * USD)
    live = BudgetException(
        budget.id, 50 * USD, DEC_1, "launch week", "em@example.com", created_at=0
    )
    expired = BudgetException(budget.id, 7 * USD, NOV_27 - 1, "old", "em@example.com", created_at=0)
    revoked = BudgetException(
        budget.id, 9 * USD, DEC_1, "x", "em@example.com", created_at=0, revoked_at=1.0
    )
    monthly, daily = limits(budget, [live, expired, revoked], periods_at(NOV_27), NOV_27)
    assert (monthly.kind, monthly.period, monthly.micros) == ("monthly", "2026-11", 150 * USD)
    assert (daily.period, daily.micros) == ("2026-11-27", 60 * USD)
    assert (monthly.soft_micros, monthly.hard_micros) == (120 * USD, 165 * USD)
    with pytest.raises(InvalidRequest, match="reason"):
        BudgetException(budget.id, USD, DEC_1, "  ", "em@example.com")


# -- the guard ------------------------------------------------------------------------


def test_no_budget_means_no_refusal_and_no_spend_kept() -> None:
    guard, _ = guard_with()
    guard.charge(record(10**12), now=NOV_27)
    guard.check("ada@example.com", "payments", "", NOV_27)
    assert guard.take_pending() == {}


def test_the_hard_threshold_pauses_and_the_refusal_says_what_to_do() -> None:
    guard, alerts = guard_with(team_budget())
    guard.charge(record(79 * USD), now=NOV_27)
    assert alerts == []
    guard.charge(record(2 * USD), now=NOV_27)  # 81%: the soft alert, once
    guard.charge(record(1 * USD), now=NOV_27)
    assert [(a.level, a.spend_micros) for a in alerts] == [("soft", 81 * USD)]
    guard.check("ada@example.com", "payments", "", NOV_27)  # alerted, not paused
    guard.charge(record(28 * USD), now=NOV_27)  # 110%
    assert [a.level for a in alerts] == ["soft", "hard"]
    with pytest.raises(BudgetExceeded) as refused:
        guard.check("bob@example.com", "payments", "github.com/acme/pay", NOV_27)
    error = refused.value
    assert isinstance(error, RateLimited)
    assert (error.status, error.error_type, error.should_retry) == (429, "rate_limit_error", False)
    message = error.message
    for words in ("team payments", "$110.00", "$100.00", "monthly", "2026-11", "2026-12-01"):
        assert words in message
    assert "gatehouse budget exception --team payments" in message
    assert "engineering manager" in message
    # Other teams are not affected; a new month lifts the pause without any work.
    guard.check("eve@example.com", "search", "", NOV_27)
    guard.check("bob@example.com", "payments", "", DEC_1)


def test_a_large_request_crossing_both_thresholds_reports_both() -> None:
    guard, alerts = guard_with(team_budget())
    guard.charge(record(200 * USD), now=NOV_27)
    assert [a.level for a in alerts] == ["soft", "hard"]
    assert alerts[1].threshold_micros == 110 * USD


def test_an_exception_lifts_the_pause_and_re_arms_the_alerts() -> None:
    budget = team_budget()
    guard, alerts = guard_with(budget)
    guard.charge(record(120 * USD), now=NOV_27)
    with pytest.raises(BudgetExceeded):
        guard.check("ada@example.com", "payments", "", NOV_27)
    grant = BudgetException(budget.id, 100 * USD, DEC_1, "launch", "em@example.com", created_at=0)
    guard.load([budget], [grant], NOV_27)
    guard.check("ada@example.com", "payments", "", NOV_27)
    guard.charge(record(60 * USD), now=NOV_27)  # 180 of 200: the raised limit's soft alert
    assert [(a.level, a.limit.micros) for a in alerts] == [
        ("soft", 100 * USD),
        ("hard", 100 * USD),
        ("soft", 200 * USD),
    ]


def test_an_expiring_exception_pauses_again_at_the_next_tick() -> None:
    budget = team_budget()
    grant = BudgetException(budget.id, 100 * USD, NOV_27 + 60, "x", "em@example.com", created_at=0)
    guard, _ = guard_with(budget, exceptions=(grant,))
    guard.charge(record(150 * USD), now=NOV_27)
    guard.check("ada@example.com", "payments", "", NOV_27)
    guard.tick(NOV_27 + 61)
    with pytest.raises(BudgetExceeded):
        guard.check("ada@example.com", "payments", "", NOV_27 + 61)


def test_a_daily_limit_pauses_for_the_day_only() -> None:
    guard, alerts = guard_with(team_budget(daily_micros=5 * USD))
    guard.charge(record(6 * USD), now=NOV_27)
    with pytest.raises(BudgetExceeded, match="daily budget for 2026-11-27") as refused:
        guard.check("ada@example.com", "payments", "", NOV_27)
    assert "2026-11-28 00:00 UTC" in refused.value.message
    assert {a.limit.period for a in alerts} == {"2026-11-27"}
    tomorrow = periods_at(NOV_27).day_end
    guard.check("ada@example.com", "payments", "", tomorrow)


def test_developer_and_repository_budgets_apply_to_their_requests() -> None:
    dev = Budget(scope="developer", name="ada@example.com", monthly_micros=USD)
    repo = Budget(scope="repository", name="github.com/acme/pay", monthly_micros=USD)
    guard, _ = guard_with(dev, repo)
    guard.charge(record(2 * USD, repository="github.com/acme/other"), now=NOV_27)
    with pytest.raises(BudgetExceeded, match=r"developer ada@example\.com"):
        guard.check("ada@example.com", "", "", NOV_27)
    guard.check("bob@example.com", "payments", "github.com/acme/pay", NOV_27)
    guard.charge(
        record(2 * USD, developer="bob@example.com", repository="github.com/acme/pay"), now=NOV_27
    )
    with pytest.raises(BudgetExceeded, match=r"repository github\.com/acme/pay"):
        guard.check("bob@example.com", "", "github.com/acme/pay", NOV_27)


def test_unknown_cost_charges_nothing() -> None:
    guard, _ = guard_with(team_budget())
    guard.charge(record(None), now=NOV_27)
    assert guard.spend(("team", "payments", "2026-11")) == 0


def test_shared_totals_pause_and_a_crossing_is_reported_once() -> None:
    guard, alerts = guard_with(team_budget())
    key = ("team", "payments", "2026-11")
    guard.charge(record(10 * USD), now=NOV_27)
    sent = guard.take_pending()
    assert sent == {key: 10 * USD}
    assert guard.spend(key) == 10 * USD  # in flight, still counted
    # Another replica spent 100 meanwhile: this increment is the one that crosses 110.
    assert guard.settle(key, 10 * USD, 110 * USD, NOV_27) is True
    with pytest.raises(BudgetExceeded):
        guard.check("ada@example.com", "payments", "", NOV_27)
    assert guard.settle(key, 0, 111 * USD, NOV_27) is False
    assert [a.level for a in alerts] == ["soft", "hard"]


def test_a_failed_send_keeps_the_charge_for_the_next_one() -> None:
    guard, _ = guard_with(team_budget())
    key = ("team", "payments", "2026-11")
    guard.charge(record(3 * USD), now=NOV_27)
    sent = guard.take_pending()
    guard.unsend(key, sent[key])
    guard.charge(record(USD), now=NOV_27)
    assert guard.take_pending() == {key: 4 * USD}


def test_announced_totals_only_ever_raise_spend() -> None:
    guard, _ = guard_with(team_budget())
    key = ("team", "payments", "2026-11")
    guard.raise_floor(key, 120 * USD, NOV_27)
    with pytest.raises(BudgetExceeded):
        guard.check("ada@example.com", "payments", "", NOV_27)
    guard.raise_floor(key, 5 * USD, NOV_27)
    assert guard.spend(key) == 120 * USD


def test_the_database_sum_merges_with_local_charges_without_counting_twice() -> None:
    guard, _ = guard_with(team_budget())
    key = ("team", "payments", "2026-11")
    guard.charge(record(10 * USD), now=NOV_27)
    guard.absorb(key, 0, NOV_27)  # not drained yet: local charges stand
    assert guard.spend(key) == 10 * USD
    guard.absorb(key, 10 * USD, NOV_27)  # drained: the same 10, not 20
    assert guard.spend(key) == 10 * USD
    guard.absorb(key, 30 * USD, NOV_27)  # another process spent 20
    assert guard.spend(key) == 30 * USD


@given(st.lists(st.integers(min_value=0, max_value=50 * USD), max_size=40), st.data())
def test_replicas_sharing_a_counter_agree_on_the_total(
    costs: list[int], data: st.DataObject
) -> None:
    """However charges are split between replicas and batched, the counter sums them all."""
    replicas = [guard_with(team_budget())[0] for _ in range(3)]
    key = ("team", "payments", "2026-11")
    counter = 0
    for cost in costs:
        replica = replicas[data.draw(st.integers(0, 2))]
        replica.charge(record(cost), now=NOV_27)
        if data.draw(st.booleans()):
            for sent_key, delta in replica.take_pending().items():
                counter += delta
                replica.settle(sent_key, delta, counter, NOV_27)
    for replica in replicas:
        for sent_key, delta in replica.take_pending().items():
            counter += delta
            replica.settle(sent_key, delta, counter, NOV_27)
    assert counter == sum(costs)
    replicas[0].observe(key, counter, NOV_27)
    paused = sum(costs) >= 110 * USD
    try:
        replicas[0].check("ada@example.com", "payments", "", NOV_27)
        refused = False
    except BudgetExceeded:
        refused = True
    assert refused is paused
