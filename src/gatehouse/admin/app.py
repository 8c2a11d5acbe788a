"""The admin API: FastAPI under ``/admin/api``, its OpenAPI document at ``/admin/api/openapi.json``.

Each route names the roles it admits (`Allow`); ``tests/integration/test_admin_api.py``
holds the whole role × route matrix.  Errors have the gateway's Anthropic shape,
so one client-side parser reads both.  The routes read what the running gateway
holds (``Services``), so they answer from the same snapshots and database.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gatehouse.admin.audit import audit_routes
from gatehouse.admin.auth import Allow, Caller
from gatehouse.admin.backend import Backend
from gatehouse.admin.budgets import budget_routes
from gatehouse.admin.chargeback import chargeback_routes
from gatehouse.admin.policy import policy_routes, repo_routes
from gatehouse.errors import GatewayError, error_body
from gatehouse.identity.roles import FINANCE, PLATFORM_ADMIN, ROLES, SECURITY

EVERYONE = Allow(*ROLES)
OPERATORS = Allow(PLATFORM_ADMIN, SECURITY, FINANCE)


def create_admin_app(backend: Backend) -> FastAPI:
    api = FastAPI(
        title="Gatehouse admin API",
        version="1",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    api.state.authenticate = backend.authenticate
    api.state.sessions = getattr(backend, "sessions", None)  # browser sign-in (auth.py)
    api.add_exception_handler(GatewayError, _gateway_error)
    api.add_exception_handler(RequestValidationError, _validation_error)
    api.add_exception_handler(HTTPException, _http_error)

    @api.get("/v1/whoami", tags=["identity"])
    def whoami(caller: Annotated[Caller, Depends(EVERYONE)]) -> dict[str, Any]:
        """The authenticated human, their team and roles."""
        p = caller.principal
        return {"email": p.email, "team": p.team, "roles": list(p.roles), "key_id": p.key_id}

    @api.get("/v1/events", tags=["events"])
    async def events(
        caller: Annotated[Caller, Depends(OPERATORS)],
        kind: Annotated[str | None, Query(max_length=64)] = None,
        since: Annotated[float | None, Query(description="epoch seconds")] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> list[dict[str, Any]]:
        """Events newest first (unknown-model prices, budget alerts, …)."""
        found = await backend.database.query_events(kind=kind, since=since, limit=limit)
        return [event.to_dict() for event in found]

    api.include_router(chargeback_routes(backend))
    api.include_router(budget_routes(backend))
    api.include_router(repo_routes(backend))
    api.include_router(policy_routes(backend))
    api.include_router(audit_routes(backend))
    return api


def _json_error(error: GatewayError) -> Response:
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in error.response_headers()}
    return Response(error.body(), status_code=error.status, headers=headers)


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)
    return _json_error(exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
        for error in exc.errors()
    )
    return Response(
        error_body("invalid_request_error", f"invalid request: {problems}"),
        status_code=400,
        media_type="application/json",
        headers={"x-should-retry": "false"},
    )


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = {404: "not_found_error", 405: "invalid_request_error"}.get(exc.status_code, "api_error")
    return Response(
        error_body(kind, f"{request.method} {request.url.path}: {exc.detail}"),
        status_code=exc.status_code,
        media_type="application/json",
        headers={"x-should-retry": "false"},
    )
