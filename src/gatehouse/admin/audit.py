"""Admin routes over the audit trail: search, transcripts, investigations, integrity, holds.

Audit content (prompts, answers, tool results) is security's to read: search,
transcripts and investigations admit the ``security`` role only (legal
reviewers are given that role for the matter at hand).  Whether the trail is
intact and which legal holds stand reveal no content, so platform admins may
read those too; placing or releasing a hold is security's.  Every read of
content is itself recorded (an event and an admin record: who, what, how long).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from starlette.responses import Response

from gatehouse.admin.auth import Allow, Caller
from gatehouse.admin.backend import Backend
from gatehouse.audit import chain, retention
from gatehouse.audit.crypto import Keyring
from gatehouse.audit.investigate import investigate, read_transcript, searched
from gatehouse.audit.search import Filters, parse_when
from gatehouse.audit.transcript import render
from gatehouse.errors import InvalidRequest, NotFound
from gatehouse.identity.roles import PLATFORM_ADMIN, SECURITY

READERS = Allow(SECURITY)
INTEGRITY = Allow(SECURITY, PLATFORM_ADMIN)
_MEDIA = {"json": "application/json", "md": "text/markdown; charset=utf-8", "html": "text/html"}
Text = Annotated[str, Query(max_length=500)]


class HoldTerms(BaseModel):
    scope: str = Field(description="developer, session or repository")
    value: str = Field(min_length=1, max_length=500, examples=["github.com/acme/payments"])
    reason: str = Field(min_length=1, max_length=2000)


def audit_routes(backend: Backend) -> APIRouter:
    router = APIRouter(tags=["audit"])

    def keyring() -> Keyring | None:
        return backend.audit_keyring

    @router.get("/v1/audit/search")
    async def search_route(
        caller: Annotated[Caller, Depends(READERS)],
        q: Annotated[str, Query(description='words, "a phrase", prefix*, -excluded, OR')],
        developer: Text = "",
        team: Text = "",
        repository: Text = "",
        session: Text = "",
        model: Text = "",
        guard: Annotated[str, Query(description="clean, flagged, redacted, blocked, …")] = "",
        decision: Annotated[str, Query(description="allowed, denied, observed")] = "",
        since: Annotated[str | None, Query(description="24h, 7d, a date or epoch")] = None,
        until: Annotated[str | None, Query(description="a date/time or epoch")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> dict[str, Any]:
        """Full-text search over block text with filters, newest first."""
        filters = Filters(
            developer=developer,
            team=team,
            repository=repository,
            session=session,
            model=model,
            guard=guard,
            decision=decision,
            since=parse_when(since, name="since") if since else None,
            until=parse_when(until, name="until") if until else None,
        )
        found = await searched(
            backend.database, q, filters, limit=limit, actor=caller.email, via="api"
        )
        result: dict[str, Any] = found.to_json()
        return result

    @router.get(
        "/v1/audit/sessions/{session}/transcript",
        response_model=None,
        responses={200: {"content": {m: {} for m in _MEDIA.values()}}},
    )
    async def transcript_route(
        caller: Annotated[Caller, Depends(READERS)],
        session: Annotated[str, PathParam(max_length=200)],
        format: Annotated[str, Query(description="json, md or html")] = "json",
    ) -> Response:
        """A session's transcript: prompts, answers, tool calls, verdicts, cost and timing."""
        if format not in _MEDIA:
            raise InvalidRequest(f"format {format!r}: choose json, md or html")
        found = await read_transcript(
            backend.database, session, keyring(), fmt=format, actor=caller.email, via="api"
        )
        return Response(render(found, format), media_type=_MEDIA[format])

    @router.get("/v1/audit/investigate/{subject}")
    async def investigate_route(
        caller: Annotated[Caller, Depends(READERS)],
        subject: Annotated[str, PathParam(max_length=200, description="an event or request id")],
    ) -> dict[str, Any]:
        """From an event to its transcript, developer, repository and their other sessions."""
        found = await investigate(
            backend.database, subject, actor=caller.email, via="api", keyring=keyring()
        )
        return found.to_json()

    @router.get("/v1/audit/verify")
    async def verify_route(
        caller: Annotated[Caller, Depends(INTEGRITY)],
        since: Annotated[str | None, Query(description="24h, 7d, a date or epoch")] = None,
    ) -> dict[str, Any]:
        """Whether the hash chains, daily roots and blocks verify, and what does not."""
        cutoff = parse_when(since, name="since") if since else None
        problems = await chain.verify(backend.database, cutoff, keyring=keyring())
        return {"intact": not problems, "problems": [asdict(p) for p in problems]}

    @router.get("/v1/audit/holds")
    async def holds_route(caller: Annotated[Caller, Depends(INTEGRITY)]) -> list[dict[str, Any]]:
        """The legal holds in force."""
        return [asdict(h) for h in await retention.active_holds(backend.database)]

    @router.post("/v1/audit/holds")
    async def place_hold_route(
        terms: HoldTerms, caller: Annotated[Caller, Depends(READERS)]
    ) -> dict[str, Any]:
        """Keep a developer's, session's or repository's audit trail until released."""
        if terms.scope not in retention.HOLD_SCOPES:
            raise InvalidRequest(f"scope {terms.scope!r}: choose developer, session or repository")
        hold = await retention.place_hold(
            backend.database, terms.scope, terms.value, reason=terms.reason, actor=caller.email
        )
        return asdict(hold)

    @router.delete("/v1/audit/holds/{hold_id}")
    async def release_hold_route(
        hold_id: Annotated[str, PathParam(max_length=64)],
        caller: Annotated[Caller, Depends(READERS)],
        reason: Annotated[str, Query(max_length=2000)] = "",
    ) -> dict[str, Any]:
        """Release a hold; retention applies again."""
        if not await retention.release_hold(
            backend.database, hold_id, actor=caller.email, reason=reason
        ):
            raise NotFound(f"no active legal hold {hold_id!r}: see GET /admin/api/v1/audit/holds")
        return {"id": hold_id, "released_by": caller.email}

    return router
