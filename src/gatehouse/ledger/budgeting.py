"""Budget changes and budget status: what `gatehouse budget` and the admin API both call.

Every change is written to the database (bumping the ``budgets`` revision, so
running gateways reload within ``GATEHOUSE_BUDGET_REFRESH_INTERVAL``), announced
on Redis when a URL is given (so they reload at once), and recorded as an event
naming who made it.  Arguments arrive parsed (micro-dollars, per-mille, epoch
seconds); bad ones are `InvalidRequest`.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from gatehouse.errors import InvalidRequest
from gatehouse.ledger.alerts import changed_event, exception_event, mask_url
from gatehouse.ledger.budgets import (
    SCOPES,
    Budget,
    BudgetException,
    Limit,
    limits,
    percent,
    periods_at,
)
from gatehouse.store.budgets import BudgetStore
from gatehouse.store.db import Database
from gatehouse.store.redis_spend import announce_budget_change


def owner(scope: str, name: str) -> tuple[str, str]:
    """A validated (scope, name): scope one of developer/team/repository, name non-empty."""
    name = name.strip()
    if scope not in SCOPES:
        raise InvalidRequest(f"a budget belongs to a {', '.join(SCOPES)}, not a {scope!r}")
    if not name:
        raise InvalidRequest(f"a {scope} budget needs a name")
    if scope == "developer" and "@" not in name:
        raise InvalidRequest(f"a developer budget is named by an email address, not {name!r}")
    return scope, name


async def set_budget(
    db: Database,
    redis_url: str,
    *,
    scope: str,
    name: str,
    monthly_micros: int,
    by: str,
    daily_micros: int | None = None,
    soft_permille: int | None = None,
    hard_permille: int | None = None,
    webhook_url: str | None = None,
) -> Budget:
    """Create or change a budget; ``None`` keeps the current value (``daily_micros=0`` removes
    the daily limit)."""
    scope, name = owner(scope, name)
    if webhook_url and not webhook_url.startswith(("https://", "http://")):
        raise InvalidRequest(f"a webhook must be an http(s) URL, not {mask_url(webhook_url)}")
    budgets = BudgetStore(db)
    current = await budgets.get(scope, name) or Budget(scope, name, monthly_micros)
    wanted = replace(
        current,
        monthly_micros=monthly_micros,
        daily_micros=current.daily_micros if daily_micros is None else daily_micros or None,
        soft_permille=current.soft_permille if soft_permille is None else soft_permille,
        hard_permille=current.hard_permille if hard_permille is None else hard_permille,
        webhook_url=current.webhook_url if webhook_url is None else webhook_url,
        updated_at=time.time(),
        updated_by=by,
    )
    stored = await budgets.put(wanted)
    await db.insert_events([changed_event(stored)])
    await announce_budget_change(redis_url, f"set {scope} {name}")
    return stored


async def grant_exception(
    db: Database,
    redis_url: str,
    *,
    scope: str,
    name: str,
    amount_micros: int,
    until: float,
    reason: str,
    by: str,
    now: float | None = None,
) -> tuple[Budget, BudgetException, list[Limit]]:
    """Raise a budget by ``amount_micros`` until ``until``; the budget, the exception and the
    limits now in force."""
    scope, name = owner(scope, name)
    now = time.time() if now is None else now
    if not reason.strip():
        raise InvalidRequest("an exception needs a reason: it is kept with who granted it")
    budgets = BudgetStore(db)
    budget = await budgets.get(scope, name)
    if budget is None:
        raise InvalidRequest(
            f"no budget for {scope} {name}: set one first (gatehouse budget set "
            f"--{scope} {name} --monthly USD)"
        )
    granted = BudgetException(
        budget_id=budget.id,
        amount_micros=amount_micros,
        until=until,
        reason=reason.strip(),
        granted_by=by,
        created_at=now,
    )
    await budgets.grant(granted)
    await db.insert_events([exception_event(budget, granted)])
    await announce_budget_change(redis_url, f"exception {scope} {name}")
    _, live = await budgets.load(now)
    mine = [e for e in live if e.budget_id == budget.id]
    return budget, granted, list(limits(budget, mine, periods_at(now), now))


async def remove_budget(
    db: Database, redis_url: str, *, scope: str, name: str, by: str
) -> Budget | None:
    """Remove a budget and its exceptions (the ledger keeps what was spent); None if none."""
    scope, name = owner(scope, name)
    removed = await BudgetStore(db).remove(scope, name)
    if removed is not None:
        gone = replace(removed, updated_at=time.time(), updated_by=by)
        await db.insert_events([changed_event(gone, removed=True)])
        await announce_budget_change(redis_url, f"remove {scope} {name}")
    return removed


async def budget_statuses(db: Database, now: float | None = None) -> list[dict[str, Any]]:
    """Each budget with its effective limits, spend and state for the current periods."""
    now = time.time() if now is None else now
    store = BudgetStore(db)
    budgets, live = await store.load(now)
    periods = periods_at(now)
    spend: dict[tuple[str, str], dict[str, int]] = {}
    for scope in SCOPES:
        names = [b.name for b in budgets if b.scope == scope]
        if names:
            for period, (start, end) in (
                (periods.month, (periods.month_start, periods.month_end)),
                (periods.day, (periods.day_start, periods.day_end)),
            ):
                spend[(scope, period)] = await store.spend(scope, start, end, names)
    rows = []
    for budget in budgets:
        mine = [e for e in live if e.budget_id == budget.id]
        described: dict[str, dict[str, Any] | None] = {"monthly": None, "daily": None}
        states = []
        for limit in limits(budget, mine, periods, now):
            spent = spend.get((budget.scope, limit.period), {}).get(budget.name, 0)
            states.append(limit.state(spent))
            described[limit.kind] = {
                "period": limit.period,
                "spend_micros": spent,
                "limit_micros": limit.micros,
                "base_micros": limit.base_micros,
                "soft_micros": limit.soft_micros,
                "hard_micros": limit.hard_micros,
                "used": percent(spent, limit.micros),
                "state": limit.state(spent),
            }
        state = next((s for s in ("paused", "alerted") if s in states), "ok")
        rows.append(
            {
                "id": budget.id,
                "scope": budget.scope,
                "name": budget.name,
                "monthly_micros": budget.monthly_micros,
                "daily_micros": budget.daily_micros,
                "soft": f"{budget.soft_permille / 10:g}%",
                "hard": f"{budget.hard_permille / 10:g}%",
                "webhook": mask_url(budget.webhook_url) if budget.webhook_url else "",
                "state": state,
                **described,
                "exceptions": [
                    {
                        "id": e.id,
                        "amount_micros": e.amount_micros,
                        "until": iso(e.until),
                        "reason": e.reason,
                        "granted_by": e.granted_by,
                        "created_at": iso(e.created_at),
                    }
                    for e in mine
                ],
                "updated_at": iso(budget.updated_at),
                "updated_by": budget.updated_by,
            }
        )
    return rows


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")
