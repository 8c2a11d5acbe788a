"""Admin routes for budgets: read them, set them (finance), raise them for a while (managers).

The same services as `gatehouse budget` (`gatehouse.ledger.budgeting`); every
change is recorded with the caller as who made it.  An engineering manager
sees and raises their own team's budget only.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from gatehouse.admin.auth import Allow, Caller
from gatehouse.admin.backend import Backend
from gatehouse.errors import NotFound, PermissionDenied
from gatehouse.identity.roles import ENG_MANAGER, FINANCE, PLATFORM_ADMIN
from gatehouse.ledger import budgeting
from gatehouse.ledger.budgets import parse_ratio, parse_until, parse_usd, usd, utc_text

READERS = Allow(FINANCE, PLATFORM_ADMIN, ENG_MANAGER)
SETTERS = Allow(FINANCE, PLATFORM_ADMIN)
Scope = Annotated[str, Path(description="developer, team or repository")]
Name = Annotated[str, Path(description="the developer's email, the team or the repository")]


class BudgetTerms(BaseModel):
    """A budget's limits; USD amounts and ratios as text so they stay exact."""

    monthly_usd: str = Field(examples=["1000"])
    daily_usd: str | None = Field(None, description="also a daily limit; 0 removes it")
    soft: str | None = Field(None, description="alert at this share of the limit", examples=["0.8"])
    hard: str | None = Field(None, description="pause at this share", examples=["1.1"])
    webhook_url: str | None = Field(None, description="this budget's alert webhook")


class ExceptionTerms(BaseModel):
    amount_usd: str = Field(examples=["250"])
    until: str = Field(description="last day (YYYY-MM-DD, UTC) or an ISO 8601 time")
    reason: str = Field(min_length=1, max_length=2000)


def budget_routes(backend: Backend) -> APIRouter:
    router = APIRouter(tags=["budgets"])

    @router.get("/v1/budgets")
    async def list_budgets(caller: Annotated[Caller, Depends(READERS)]) -> list[dict[str, Any]]:
        """Every budget with this period's spend, the share used and its state."""
        team = caller.team_scope(FINANCE, PLATFORM_ADMIN)
        rows = await budgeting.budget_statuses(backend.database)
        if team is None:
            return rows
        return [row for row in rows if (row["scope"], row["name"]) == ("team", team)]

    @router.put("/v1/budgets/{scope}/{name:path}")
    async def set_budget(
        scope: Scope, name: Name, terms: BudgetTerms, caller: Annotated[Caller, Depends(SETTERS)]
    ) -> dict[str, Any]:
        """Create or change a budget; fields left out keep their current values."""
        budget = await budgeting.set_budget(
            backend.database,
            backend.redis_url,
            scope=scope,
            name=name,
            monthly_micros=parse_usd(terms.monthly_usd, what="monthly_usd"),
            daily_micros=None
            if terms.daily_usd is None
            else parse_usd(terms.daily_usd, what="daily_usd"),
            soft_permille=None if terms.soft is None else parse_ratio(terms.soft, what="soft"),
            hard_permille=None if terms.hard is None else parse_ratio(terms.hard, what="hard"),
            webhook_url=terms.webhook_url,
            by=caller.email,
        )
        return {
            "id": budget.id,
            "scope": budget.scope,
            "name": budget.name,
            "monthly_usd": usd(budget.monthly_micros),
            "daily_usd": None if budget.daily_micros is None else usd(budget.daily_micros),
            "soft_permille": budget.soft_permille,
            "hard_permille": budget.hard_permille,
            "updated_by": budget.updated_by,
        }

    @router.delete("/v1/budgets/{scope}/{name:path}")
    async def remove_budget(
        scope: Scope, name: Name, caller: Annotated[Caller, Depends(SETTERS)]
    ) -> dict[str, Any]:
        """Remove a budget and its exceptions; what was spent stays in the ledger."""
        removed = await budgeting.remove_budget(
            backend.database, backend.redis_url, scope=scope, name=name, by=caller.email
        )
        if removed is None:
            raise NotFound(f"no budget for {scope} {name}")
        return {"removed": removed.id, "scope": removed.scope, "name": removed.name}

    @router.post("/v1/budgets/{scope}/{name:path}/exceptions")
    async def grant_exception(
        scope: Scope,
        name: Name,
        terms: ExceptionTerms,
        caller: Annotated[Caller, Depends(READERS)],
    ) -> dict[str, Any]:
        """Raise a budget by an amount until a date, recorded with who granted it and why."""
        now = time.time()
        team = caller.team_scope(FINANCE, PLATFORM_ADMIN)
        if team is not None and (scope, name) != ("team", team):
            raise PermissionDenied(
                f"{caller.email} manages team {team}: they may raise that team's budget only"
            )
        budget, granted, effective = await budgeting.grant_exception(
            backend.database,
            backend.redis_url,
            scope=scope,
            name=name,
            amount_micros=parse_usd(terms.amount_usd, what="amount_usd"),
            until=parse_until(terms.until, now),
            reason=terms.reason,
            by=caller.email,
            now=now,
        )
        return {
            "id": granted.id,
            "budget": budget.id,
            "amount_usd": usd(granted.amount_micros),
            "until": utc_text(granted.until),
            "granted_by": granted.granted_by,
            "reason": granted.reason,
            "limits": {limit.kind: usd(limit.micros) for limit in effective},
        }

    return router
