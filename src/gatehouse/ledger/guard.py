"""`BudgetGuard`: the budget snapshot and spend in memory, checked on every request.

The hot path is `check` — a few dict lookups, no await, no allocation unless it
refuses — and `charge`, which adds a priced record's cost to the spend of the
developer's, team's and repository's budgets at once and notes the delta for
the shared counter.  Everything that talks to Redis or the database lives in
`gatehouse.ledger.enforcement`, which feeds the guard what it learns:

- ``settle`` — the shared counter's total after this process's increment;
- ``observe`` — a total read back from the shared counter;
- ``raise_floor`` — a total another replica announced (a pause, at once);
- ``absorb`` — without Redis, the database's sum for the period.

Spend is kept per ``(scope, name, period)``: it belongs to the team, not to the
budget row, so removing and re-setting a budget keeps what was spent.  A
period's spend is ``shared + sending + pending``: the last total learnt, plus
this process's increments in flight, plus those not sent yet.

A budget is **paused** while any of its periods is at or past the hard
threshold; the pause carries its period's end, so a new month or day lifts it
without any work.  Alerts are level-triggered: each time a budget is assessed
at or past a threshold not yet reported by this process, ``on_alert`` is called;
making that once per threshold per period across replicas is the caller's job
(it claims the alert in the database).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gatehouse.ledger.budgets import (
    HARD,
    SCOPES,
    SOFT,
    Budget,
    BudgetException,
    Limit,
    exceeded,
    limits,
    periods_at,
)
from gatehouse.ledger.usage import UsageRecord

SpendKey = tuple[str, str, str]
"""``(scope, name, period)``: ``("team", "payments", "2026-11")``."""


@dataclass(slots=True)
class Tally:
    shared: int = 0  # the last total learnt from the shared counter or the database
    sending: int = 0  # increments sent to the counter, reply not back yet
    pending: int = 0  # charged here, not sent yet

    @property
    def spend(self) -> int:
        return self.shared + self.sending + self.pending


@dataclass(frozen=True, slots=True)
class Alert:
    """A budget found at or past a threshold: ``level`` is ``soft`` or ``hard`` (the pause)."""

    budget: Budget
    limit: Limit
    level: str
    spend_micros: int
    ts: float

    @property
    def threshold_micros(self) -> int:
        return self.limit.soft_micros if self.level == SOFT else self.limit.hard_micros

    @property
    def permille(self) -> int:
        return self.budget.soft_permille if self.level == SOFT else self.budget.hard_permille


@dataclass(frozen=True, slots=True)
class Pause:
    budget: Budget
    limit: Limit

    @property
    def until(self) -> float:
        return self.limit.ends


@dataclass(slots=True)
class _Entry:
    budget: Budget
    exceptions: tuple[BudgetException, ...]
    limits: tuple[Limit, ...] = ()


class BudgetGuard:
    """The snapshot of budgets and the spend against them, for one process.

    ``on_alert`` receives every newly reached threshold; ``on_charge`` is
    called after a charge left a delta to send (to wake the sender).  Both
    must return at once: they run on the request path.
    """

    def __init__(
        self,
        *,
        on_alert: Callable[[Alert], None] | None = None,
        on_charge: Callable[[], None] | None = None,
    ) -> None:
        self.on_alert = on_alert
        self.on_charge = on_charge
        self.count = 0  # budgets in the snapshot
        self._entries: dict[str, dict[str, _Entry]] = {scope: {} for scope in SCOPES}
        self._tallies: dict[SpendKey, Tally] = {}
        # One dict per scope, not one keyed by (scope, name): no tuple per lookup.
        self._paused_developers: dict[str, Pause] = {}
        self._paused_teams: dict[str, Pause] = {}
        self._paused_repositories: dict[str, Pause] = {}
        self._alerted: set[tuple[str, str, str, int]] = set()
        self._periods = periods_at(time.time())
        self._next_change = 0.0
        self._wanted: tuple[SpendKey, ...] = ()

    # -- the hot path -------------------------------------------------------

    def check(self, developer: str, team: str, repository: str, now: float) -> None:
        """Refuse with `BudgetExceeded` if any budget this request spends from is paused."""
        if not (self._paused_developers or self._paused_teams or self._paused_repositories):
            return
        for pause in (
            self._paused_developers.get(developer),
            self._paused_teams.get(team),
            self._paused_repositories.get(repository),
        ):
            if pause is not None and now < pause.until:
                budget, limit = pause.budget, pause.limit
                raise exceeded(budget, limit, self.spend((budget.scope, budget.name, limit.period)))

    def charge(self, record: UsageRecord, now: float | None = None) -> None:
        """Add the record's cost to its budgets' spend; an unknown cost (None) adds nothing."""
        cost = record.cost_micros
        if not cost or not self.count:
            return
        now = time.time() if now is None else now
        if now >= self._next_change:
            self.tick(now)
        periods = self._periods if self._periods.contains(record.ts) else periods_at(record.ts)
        charged = False
        for scope, name in (
            ("developer", record.developer),
            ("team", record.team),
            ("repository", record.repository),
        ):
            entry = self._entries[scope].get(name) if name else None
            if entry is None:
                continue
            for kind in entry.budget.kinds:
                self._tally((scope, name, periods.key(kind))).pending += cost
            self._assess(entry, now)
            charged = True
        if charged and self.on_charge is not None:
            self.on_charge()

    # -- the snapshot -------------------------------------------------------

    def load(
        self, budgets: Iterable[Budget], exceptions: Iterable[BudgetException], now: float
    ) -> None:
        """Replace the snapshot of budget definitions (spend is kept)."""
        raises: dict[str, list[BudgetException]] = {}
        for exception in exceptions:
            raises.setdefault(exception.budget_id, []).append(exception)
        entries: dict[str, dict[str, _Entry]] = {scope: {} for scope in SCOPES}
        for budget in budgets:
            entries[budget.scope][budget.name] = _Entry(budget, tuple(raises.get(budget.id, ())))
        self._entries = entries
        self.count = sum(len(by_name) for by_name in entries.values())
        self._reassess_all(now)

    def tick(self, now: float) -> None:
        """Re-derive limits when a period rolled over or an exception started or ended."""
        if now >= self._next_change:
            self._reassess_all(now)

    def wanted(self) -> tuple[SpendKey, ...]:
        """Every ``(scope, name, period)`` whose spend the current budgets need."""
        return self._wanted

    def limit_of(self, key: SpendKey) -> Limit | None:
        entry = self._entries[key[0]].get(key[1])
        if entry is None:
            return None
        return next((limit for limit in entry.limits if limit.period == key[2]), None)

    # -- what the sharing side tells the guard ---------------------------------

    def spend(self, key: SpendKey) -> int:
        tally = self._tallies.get(key)
        return tally.spend if tally is not None else 0

    def take_pending(self) -> dict[SpendKey, int]:
        """The deltas charged since the last call, now counted as being sent."""
        out = {}
        for key, tally in self._tallies.items():
            if tally.pending:
                out[key] = tally.pending
                tally.sending += tally.pending
                tally.pending = 0
        return out

    def settle(self, key: SpendKey, sent: int, total: int, now: float) -> bool:
        """The counter took ``sent`` and now holds ``total``; True if that crossed a pause."""
        tally = self._tally(key)
        tally.sending -= sent
        # ``total`` includes ``sent``; what is still sending or pending is not in it yet.
        tally.shared = total
        limit = self.limit_of(key)
        self._reassess_key(key, now)
        return limit is not None and total - sent < limit.hard_micros <= total

    def unsend(self, key: SpendKey, sent: int) -> None:
        """Sending failed: count ``sent`` as pending again (it is retried with the next send)."""
        tally = self._tally(key)
        tally.sending -= sent
        tally.pending += sent

    def observe(self, key: SpendKey, total: int, now: float) -> None:
        """A total read from the shared counter (which holds everything sent before the read)."""
        tally = self._tally(key)
        if tally.shared != total:
            tally.shared = total
            self._reassess_key(key, now)

    def raise_floor(self, key: SpendKey, total: int, now: float) -> None:
        """Another replica reports ``total`` for ``key``: spend is at least that."""
        tally = self._tally(key)
        if total > tally.shared:
            tally.shared = total
            self._reassess_key(key, now)

    def absorb(self, key: SpendKey, stored: int, now: float) -> None:
        """Without a shared counter: the database's sum, which holds some local charges too."""
        tally = self._tally(key)
        merged = max(stored, tally.spend)
        changed = merged != tally.spend
        tally.shared, tally.pending, tally.sending = merged, 0, 0
        if changed:
            self._reassess_key(key, now)

    # -- internals ------------------------------------------------------------

    def _tally(self, key: SpendKey) -> Tally:
        tally = self._tallies.get(key)
        if tally is None:
            tally = self._tallies[key] = Tally()
        return tally

    def _paused_by(self, scope: str) -> dict[str, Pause]:
        if scope == "developer":
            return self._paused_developers
        if scope == "team":
            return self._paused_teams
        return self._paused_repositories

    def _reassess_key(self, key: SpendKey, now: float) -> None:
        entry = self._entries[key[0]].get(key[1])
        if entry is not None:
            self._assess(entry, now)

    def _reassess_all(self, now: float) -> None:
        periods = self._periods = periods_at(now)
        next_change = periods.day_end
        wanted: list[SpendKey] = []
        for by_name in self._entries.values():
            for entry in by_name.values():
                entry.limits = limits(entry.budget, entry.exceptions, periods, now)
                wanted.extend(
                    (entry.budget.scope, entry.budget.name, lim.period) for lim in entry.limits
                )
                for exception in entry.exceptions:
                    for moment in (exception.created_at, exception.until):
                        if now < moment < next_change:
                            next_change = moment
        self._next_change = next_change
        self._wanted = tuple(wanted)
        # Spend of finished periods is dropped once nothing of it is left to send.
        keep = set(wanted)
        self._tallies = {
            key: tally
            for key, tally in self._tallies.items()
            if key in keep or tally.pending or tally.sending
        }
        self._paused_developers, self._paused_teams, self._paused_repositories = {}, {}, {}
        for by_name in self._entries.values():
            for entry in by_name.values():
                self._assess(entry, now)

    def _assess(self, entry: _Entry, now: float) -> None:
        budget = entry.budget
        pause = None
        for limit in entry.limits:
            spend = self.spend((budget.scope, budget.name, limit.period))
            if spend >= limit.soft_micros:
                self._alert(budget, limit, SOFT, spend, now)
            if spend >= limit.hard_micros:
                self._alert(budget, limit, HARD, spend, now)
                pause = pause or Pause(budget, limit)
        paused = self._paused_by(budget.scope)
        if pause is None:
            paused.pop(budget.name, None)
        else:
            paused[budget.name] = pause

    def _alert(self, budget: Budget, limit: Limit, level: str, spend: int, now: float) -> None:
        key = (budget.id, limit.period, level, limit.micros)
        if key in self._alerted:
            return
        self._alerted.add(key)
        if len(self._alerted) > 100_000:  # old periods' marks; the database claim dedups anyway
            self._alerted = {key}
        if self.on_alert is not None:
            self.on_alert(Alert(budget, limit, level, spend, now))

    def forget_alert(self, alert: Alert) -> None:
        """Report ``alert`` again at the next assessment (its delivery could not be claimed)."""
        limit = alert.limit
        self._alerted.discard((alert.budget.id, limit.period, alert.level, limit.micros))
