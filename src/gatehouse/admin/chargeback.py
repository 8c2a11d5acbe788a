"""Admin routes for finance and engineering managers: prices, reports, exports.

The same services as `gatehouse chargeback` and `gatehouse prices`
(`gatehouse.ledger.reporting`), so the API and the CLI cannot disagree.  An
engineering manager sees their own team only; finance and platform admins see
every team.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from starlette.responses import Response

from gatehouse.admin.auth import Allow, Caller
from gatehouse.admin.backend import Backend
from gatehouse.identity.roles import ENG_MANAGER, FINANCE, PLATFORM_ADMIN, ROLES
from gatehouse.ledger.reporting import (
    chargeback_export,
    chargeback_report,
    describe_prices,
    parse_period,
)

READERS = Allow(FINANCE, PLATFORM_ADMIN, ENG_MANAGER)
FINANCE_ONLY = Allow(FINANCE, PLATFORM_ADMIN)
Month = Annotated[str | None, Query(description="UTC month, YYYY-MM (default: this month)")]


def chargeback_routes(backend: Backend) -> APIRouter:
    router = APIRouter(tags=["chargeback"])

    @router.get("/v1/prices")
    def prices(caller: Annotated[Caller, Depends(Allow(*ROLES))]) -> list[dict[str, Any]]:
        """The price table in force: packaged list prices merged with the operator's file."""
        return describe_prices(backend.prices)

    @router.get("/v1/chargeback/report")
    async def report(
        caller: Annotated[Caller, Depends(READERS)],
        by: Annotated[
            str, Query(description="team, developer, repository, model, cost-centre, …")
        ] = "team",
        month: Month = None,
        day: Annotated[str | None, Query(description="UTC day, YYYY-MM-DD")] = None,
        daily: Annotated[bool, Query(description="add per-day totals")] = False,
    ) -> dict[str, Any]:
        """Spend grouped along ``by`` with the totals and the per-developer figures."""
        team = caller.team_scope(FINANCE, PLATFORM_ADMIN)
        period = parse_period(month, day)
        found = await chargeback_report(backend.database, period, by, daily=daily, team=team)
        return found.to_json()

    @router.get(
        "/v1/chargeback/export",
        response_class=Response,
        responses={200: {"content": {"text/csv": {}}}},
    )
    async def export(
        caller: Annotated[Caller, Depends(FINANCE_ONLY)],
        month: Month = None,
        format: Annotated[str, Query(description="csv or focus")] = "csv",
    ) -> Response:
        """The month's usage as CSV, or as a FOCUS 1.x file FinOps tools ingest."""
        made = await chargeback_export(backend.database, parse_period(month), format)
        return Response(
            made.text,
            media_type=made.media_type,
            headers={"content-disposition": f'attachment; filename="{made.filename}"'},
        )

    return router
