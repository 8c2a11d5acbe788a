"""Budgets: what a developer, team or repository may spend, and when it must stop.

Pure values and arithmetic, no I/O.  Money is integer micro-dollars throughout
(``1_000_000`` is $1), parsed from the operator's text exactly (`parse_usd`).

A budget has a monthly limit and optionally a daily one; each period is a UTC
calendar month (``"2026-11"``) or day (``"2026-11-27"``).  An **exception**
raises every limit of its budget by its amount until it expires or is revoked.
For each period:

- the **soft** threshold (default 80% of the effective limit) sends an alert;
- the **hard** threshold (default 110%) pauses the budget: further requests are
  refused with `BudgetExceeded` until the period ends or the limit is raised.

Thresholds are held as integer per-mille (800, 1100), so no float ever touches
an amount.  `gatehouse.ledger.guard.BudgetGuard` applies all this per request.
"""

from __future__ import annotations

import calendar
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from gatehouse.errors import InvalidRequest, RateLimited

SCOPES = ("developer", "team", "repository")
MONTHLY = "monthly"
DAILY = "daily"
SOFT = "soft"
HARD = "hard"
MICROS_PER_USD = 1_000_000
DEFAULT_SOFT_PERMILLE = 800
DEFAULT_HARD_PERMILLE = 1100

_USD = re.compile(r"^\$?\s*(\d[\d_,]*(?:\.\d*)?|\.\d+)$")
_RATIO = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)\s*(%?)$")


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit for one developer, team or repository.

    ``soft_permille`` / ``hard_permille`` are the alert and pause thresholds as
    thousandths of the effective limit (800 = 80%).  ``webhook_url`` overrides
    ``GATEHOUSE_ALERT_WEBHOOK_URL`` for this budget's alerts.
    """

    scope: str
    name: str
    monthly_micros: int
    daily_micros: int | None = None
    soft_permille: int = DEFAULT_SOFT_PERMILLE
    hard_permille: int = DEFAULT_HARD_PERMILLE
    webhook_url: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    updated_at: float = field(default_factory=time.time)
    updated_by: str = ""

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise InvalidRequest(
                f"a budget's scope is one of {', '.join(SCOPES)}, not {self.scope!r}"
            )
        if not self.name:
            raise InvalidRequest(f"a {self.scope} budget needs the {self.scope}'s name")
        if self.monthly_micros <= 0:
            raise InvalidRequest("the monthly limit must be more than $0")
        if self.daily_micros is not None and self.daily_micros <= 0:
            raise InvalidRequest("the daily limit must be more than $0 (or left out)")
        if not 0 < self.soft_permille < self.hard_permille:
            raise InvalidRequest(
                f"the soft threshold ({self.soft_permille / 10:g}%) must be above 0 and below "
                f"the hard one ({self.hard_permille / 10:g}%)"
            )

    def base_limit(self, kind: str) -> int | None:
        """The configured limit of a period kind (``monthly``/``daily``), None if unset."""
        return self.monthly_micros if kind == MONTHLY else self.daily_micros

    @property
    def kinds(self) -> tuple[str, ...]:
        return (MONTHLY, DAILY) if self.daily_micros is not None else (MONTHLY,)

    def describe(self) -> str:
        """``team payments`` — how messages name the budget's owner."""
        return f"{self.scope} {self.name}"


@dataclass(frozen=True, slots=True)
class BudgetException:
    """A temporary raise of a budget's limits, granted by someone, for a reason."""

    budget_id: str
    amount_micros: int
    until: float
    reason: str
    granted_by: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_at: float = field(default_factory=time.time)
    revoked_at: float | None = None

    def __post_init__(self) -> None:
        if self.amount_micros <= 0:
            raise InvalidRequest("an exception's amount must be more than $0")
        if not self.reason.strip():
            raise InvalidRequest("an exception needs a reason (--reason), kept with who granted it")

    def active(self, now: float) -> bool:
        return self.revoked_at is None and self.created_at <= now < self.until


@dataclass(frozen=True, slots=True)
class Periods:
    """The UTC month and day containing one instant, with their bounds (epoch seconds)."""

    month: str
    day: str
    month_start: float
    month_end: float
    day_start: float
    day_end: float

    def key(self, kind: str) -> str:
        return self.month if kind == MONTHLY else self.day

    def end(self, kind: str) -> float:
        return self.month_end if kind == MONTHLY else self.day_end

    def contains(self, ts: float) -> bool:
        return self.day_start <= ts < self.day_end


def periods_at(ts: float) -> Periods:
    """The periods ``ts`` falls in: month ``"2026-11"`` and day ``"2026-11-27"`` (UTC)."""
    moment = datetime.fromtimestamp(ts, tz=UTC)
    day = datetime(moment.year, moment.month, moment.day, tzinfo=UTC)
    month = day.replace(day=1)
    days_in_month = calendar.monthrange(month.year, month.month)[1]
    return Periods(
        month=month.strftime("%Y-%m"),
        day=day.strftime("%Y-%m-%d"),
        month_start=month.timestamp(),
        month_end=(month + timedelta(days=days_in_month)).timestamp(),
        day_start=day.timestamp(),
        day_end=(day + timedelta(days=1)).timestamp(),
    )


def period_bounds(period: str) -> tuple[float, float]:
    """``"2026-11"`` or ``"2026-11-27"`` → (start, end) in epoch seconds, end exclusive."""
    if len(period) == 7:
        start = datetime.strptime(period, "%Y-%m").replace(tzinfo=UTC)
        periods = periods_at(start.timestamp())
        return periods.month_start, periods.month_end
    start = datetime.strptime(period, "%Y-%m-%d").replace(tzinfo=UTC)
    return start.timestamp(), (start + timedelta(days=1)).timestamp()


@dataclass(frozen=True, slots=True)
class Limit:
    """One period's effective limit and its two thresholds, in micro-dollars."""

    kind: str
    period: str
    base_micros: int
    raised_micros: int  # by active exceptions
    soft_micros: int
    hard_micros: int
    ends: float

    @property
    def micros(self) -> int:
        return self.base_micros + self.raised_micros

    def state(self, spend: int) -> str:
        """``paused`` at or past the hard threshold, ``alerted`` past the soft one, else ``ok``."""
        if spend >= self.hard_micros:
            return "paused"
        if spend >= self.soft_micros:
            return "alerted"
        return "ok"


def raised_by(exceptions: Iterable[BudgetException], now: float) -> int:
    """How much the exceptions active at ``now`` add to each limit."""
    return sum(e.amount_micros for e in exceptions if e.active(now))


def threshold(limit_micros: int, permille: int) -> int:
    """``limit × permille / 1000``, rounded up: a threshold is never below its share."""
    return -(-limit_micros * permille // 1000)


def limits(
    budget: Budget, exceptions: Iterable[BudgetException], periods: Periods, now: float
) -> tuple[Limit, ...]:
    """The budget's effective limits for the periods of ``periods`` (monthly, then daily)."""
    raised = raised_by(exceptions, now)
    out = []
    for kind in budget.kinds:
        base = budget.base_limit(kind)
        assert base is not None  # kinds lists only the limits that are set
        total = base + raised
        out.append(
            Limit(
                kind=kind,
                period=periods.key(kind),
                base_micros=base,
                raised_micros=raised,
                soft_micros=threshold(total, budget.soft_permille),
                hard_micros=threshold(total, budget.hard_permille),
                ends=periods.end(kind),
            )
        )
    return tuple(out)


class BudgetExceeded(RateLimited):
    """429 ``rate_limit_error`` with ``x-should-retry: false``: the budget is paused.

    Claude Code must stop and show the message, not retry: no waiting fixes this
    before the period ends or someone raises the limit.
    """


def exceeded(budget: Budget, limit: Limit, spend: int) -> BudgetExceeded:
    """The refusal a developer sees: whose budget, how much, and how to get more."""
    flag = f"--{budget.scope} {budget.name}"
    return BudgetExceeded(
        f"Budget paused: {budget.describe()} has spent {usd(spend)} of its {usd(limit.micros)} "
        f"{limit.kind} budget for {limit.period} (requests stop at "
        f"{budget.hard_permille / 10:g}%, {usd(limit.hard_micros)}). Requests through Gatehouse "
        f"resume on {utc_text(limit.ends)}, or sooner if the limit is raised: ask your "
        f"engineering manager for an exception (gatehouse budget exception {flag} "
        "--amount USD --until DATE --reason TEXT)."
    )


# -- money and ratios as operators type them ------------------------------------


def parse_usd(text: str, *, what: str = "amount") -> int:
    """``"100"``, ``"$1,250.50"``, ``"0.000001"`` → micro-dollars, exactly.

    More than six decimal places, a negative or non-numeric amount is refused
    rather than rounded: a budget is a number finance agreed to.
    """
    match = _USD.match(text.strip())
    if not match:
        raise InvalidRequest(f"cannot read {what} {text!r}: give US dollars such as 100 or 12.50")
    try:
        micros = Decimal(match.group(1).replace(",", "").replace("_", "")) * MICROS_PER_USD
    except InvalidOperation:
        raise InvalidRequest(f"cannot read {what} {text!r}: give US dollars such as 100") from None
    if micros != micros.to_integral_value():
        raise InvalidRequest(f"{what} {text!r} is finer than a micro-dollar ($0.000001)")
    return int(micros)


def parse_ratio(text: str, *, what: str) -> int:
    """``"0.8"`` or ``"80%"`` → 800 per-mille, exactly."""
    match = _RATIO.match(text.strip())
    if not match:
        raise InvalidRequest(f"cannot read {what} {text!r}: give a ratio such as 0.8 or 80%")
    value = Decimal(match.group(1)) * (10 if match.group(2) else 1000)
    if value != value.to_integral_value() or value <= 0:
        raise InvalidRequest(f"{what} {text!r} must be above 0, at most to a tenth of a percent")
    return int(value)


def parse_until(text: str, now: float) -> float:
    """``2026-11-30`` (through the end of that UTC day) or an ISO 8601 instant → epoch seconds."""
    raw = text.strip()
    try:
        if len(raw) == 10:
            until = datetime.combine(date.fromisoformat(raw), datetime.min.time(), tzinfo=UTC)
            until += timedelta(days=1)
        else:
            until = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if until.tzinfo is None:
                until = until.replace(tzinfo=UTC)
    except ValueError:
        raise InvalidRequest(
            f"cannot read date {text!r}: use YYYY-MM-DD (through the end of that day, UTC) "
            "or an ISO 8601 time"
        ) from None
    if until.timestamp() <= now:
        raise InvalidRequest(f"{text!r} is in the past: an exception must end in the future")
    return until.timestamp()


def usd(micros: int) -> str:
    """``$1,234.50``; amounts under $10 that are not whole cents keep their digits."""
    sign = "-" if micros < 0 else ""
    value = Decimal(abs(micros)) / MICROS_PER_USD
    if abs(micros) % 10_000 == 0 or abs(micros) >= 10 * MICROS_PER_USD:
        return f"{sign}${value:,.2f}"
    return f"{sign}${value.normalize():f}"


def percent(spend: int, limit: int) -> str:
    return f"{spend * 100 / limit:.0f}%" if limit else "-"


def utc_text(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")
