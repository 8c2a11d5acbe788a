"""Budgets in the database: definitions, exceptions, alert claims, spend sums.

Every change to a budget or an exception bumps the ``budgets`` revision in the
same transaction, so gateways polling that one number reload their snapshot
(as keys do).  Driver errors become `StoreError` through the `Database`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from gatehouse.ledger.budgets import SCOPES, Budget, BudgetException
from gatehouse.store.db import Database, _bump_revision
from gatehouse.store.schema import (
    BUDGETS_REVISION,
    budget_alerts,
    budget_exceptions,
    budgets,
    revisions,
    usage_records,
)


class BudgetStore:
    """What budgets need from the database, over one `Database`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def revision(self) -> int:
        """A number that changes whenever a budget or an exception changes."""
        query = sa.select(revisions.c.value).where(revisions.c.name == BUDGETS_REVISION)
        rows = await self._db.fetch_all(query, "read the budgets revision")
        return int(rows[0]["value"]) if rows else 0

    async def load(self, now: float | None = None) -> tuple[list[Budget], list[BudgetException]]:
        """Every budget, and the exceptions not revoked and not yet expired at ``now``."""
        now = time.time() if now is None else now
        rows = await self._db.fetch_all(
            sa.select(budgets).order_by(budgets.c.scope, budgets.c.name), "read budgets"
        )
        live = sa.select(budget_exceptions).where(
            budget_exceptions.c.revoked_at.is_(None), budget_exceptions.c.until > now
        )
        raised = await self._db.fetch_all(
            live.order_by(budget_exceptions.c.created_at), "read budget exceptions"
        )
        return [_budget(row) for row in rows], [_exception(row) for row in raised]

    async def get(self, scope: str, name: str) -> Budget | None:
        query = sa.select(budgets).where(budgets.c.scope == scope, budgets.c.name == name)
        rows = await self._db.fetch_all(query, "read the budget")
        return _budget(rows[0]) if rows else None

    async def put(self, budget: Budget) -> Budget:
        """Create the budget, or replace the one of the same scope and name (keeping its id)."""
        values = {
            "monthly_micros": budget.monthly_micros,
            "daily_micros": budget.daily_micros,
            "soft_permille": budget.soft_permille,
            "hard_permille": budget.hard_permille,
            "webhook_url": budget.webhook_url,
            "updated_at": budget.updated_at,
            "updated_by": budget.updated_by,
        }
        key = (budgets.c.scope == budget.scope, budgets.c.name == budget.name)
        with self._db._errors("store the budget", conflict=True):
            async with self._db._engine.begin() as conn:
                existing = (await conn.execute(sa.select(budgets.c.id).where(*key))).scalar()
                if existing is None:
                    row = {"id": budget.id, "scope": budget.scope, "name": budget.name, **values}
                    await conn.execute(budgets.insert().values(row))
                    stored_id = budget.id
                else:
                    await conn.execute(budgets.update().where(*key).values(values))
                    stored_id = existing
                await _bump_revision(conn, BUDGETS_REVISION)
        return dataclasses.replace(budget, id=stored_id)

    async def remove(self, scope: str, name: str) -> Budget | None:
        """Delete a budget and its exceptions; the removed budget, or None if there was none."""
        with self._db._errors("remove the budget"):
            async with self._db._engine.begin() as conn:
                query = sa.select(budgets).where(budgets.c.scope == scope, budgets.c.name == name)
                row = (await conn.execute(query)).mappings().first()
                if row is None:
                    return None
                await conn.execute(
                    budget_exceptions.delete().where(budget_exceptions.c.budget_id == row["id"])
                )
                await conn.execute(budgets.delete().where(budgets.c.id == row["id"]))
                await _bump_revision(conn, BUDGETS_REVISION)
        return _budget(row)

    async def grant(self, exception: BudgetException) -> None:
        """Store an exception; running gateways raise the limit at their next reload."""
        row = {
            "id": exception.id,
            "budget_id": exception.budget_id,
            "amount_micros": exception.amount_micros,
            "until": exception.until,
            "reason": exception.reason,
            "granted_by": exception.granted_by,
            "created_at": exception.created_at,
            "revoked_at": exception.revoked_at,
        }
        with self._db._errors("store the exception", conflict=True):
            async with self._db._engine.begin() as conn:
                await conn.execute(budget_exceptions.insert().values(row))
                await _bump_revision(conn, BUDGETS_REVISION)

    async def spend(
        self, scope: str, start: float, end: float, names: Sequence[str] | None = None
    ) -> dict[str, int]:
        """The cost recorded per developer, team or repository with ``start <= ts < end``.

        Records of unknown cost (NULL) add nothing: they are reported as events.
        """
        if scope not in SCOPES:
            raise ValueError(f"unknown budget scope {scope!r}")
        column = usage_records.c[scope]
        query = (
            sa.select(column.label("name"), sa.func.sum(usage_records.c.cost_micros).label("spend"))
            .where(usage_records.c.ts >= start, usage_records.c.ts < end, column != "")
            .group_by(column)
        )
        if names is not None:
            query = query.where(column.in_(list(names)))
        rows = await self._db.fetch_all(query, "sum budget spend")
        return {row["name"]: int(row["spend"] or 0) for row in rows}

    async def claim_alert(
        self, budget_id: str, period: str, threshold: str, limit_micros: int, spend: int
    ) -> bool:
        """Claim the right to send this alert; False if another process already did."""
        row = {
            "budget_id": budget_id,
            "period": period,
            "threshold": threshold,
            "limit_micros": limit_micros,
            "ts": time.time(),
            "spend_micros": spend,
        }
        insert = postgresql.insert if self._db.dialect == "postgresql" else sqlite.insert
        statement = insert(budget_alerts).values(row).on_conflict_do_nothing()
        return await self._db.execute(statement, "claim the budget alert") == 1

    async def alerts(self, period: str) -> list[sa.RowMapping]:
        """The alerts sent for ``period`` (a month or a day)."""
        query = sa.select(budget_alerts).where(budget_alerts.c.period == period)
        return await self._db.fetch_all(query, "read budget alerts")


def _budget(row: sa.RowMapping) -> Budget:
    return Budget(
        id=row["id"],
        scope=row["scope"],
        name=row["name"],
        monthly_micros=row["monthly_micros"],
        daily_micros=row["daily_micros"],
        soft_permille=row["soft_permille"],
        hard_permille=row["hard_permille"],
        webhook_url=row["webhook_url"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def _exception(row: sa.RowMapping) -> BudgetException:
    return BudgetException(
        id=row["id"],
        budget_id=row["budget_id"],
        amount_micros=row["amount_micros"],
        until=row["until"],
        reason=row["reason"],
        granted_by=row["granted_by"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )
