"""``POST /auth/token`` and ``POST /auth/revoke``: what `gatehouse key-helper` and
`gatehouse logout` call with the developer's login credential.

``/auth/token`` trades a login credential (``Authorization: Bearer ghr_…``) and
the repository the developer works in for a short-lived access token::

    POST /auth/token  {"repository": "git@github.com:acme/pay.git"}
    → 200 {"access_token": "gha_…", "token_type": "Bearer", "expires_in": 3600}

Team and roles are read now, not at login: from the IdP's groups when SCIM
provisioned the human (store/identity.lookup), else from their most recent
live developer key, else ``developer`` with no team.  Refusals are OAuth-shaped
(``{"error": …, "error_description": …}``) and say to run `gatehouse login`.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gatehouse.errors import GatewayError
from gatehouse.identity import credentials as creds
from gatehouse.identity.directory import Directory
from gatehouse.identity.revocation import Revocations
from gatehouse.identity.tokens import AccessTokens
from gatehouse.policy.repos import normalize_repository
from gatehouse.store import identity as directory_store
from gatehouse.store.db import Database

log = logging.getLogger("gatehouse.identity")

RUN_LOGIN = "run `gatehouse login` to sign in again"
_MAX_REPOSITORY = 500
_MAX_BODY = 16 * 1024


class TokenBackend(Protocol):
    """What the routes need from the running gateway (app.Services provides it)."""

    @property
    def database(self) -> Database: ...

    @property
    def access_tokens(self) -> AccessTokens: ...

    @property
    def secret(self) -> bytes: ...

    @property
    def directory(self) -> Directory: ...

    @property
    def revocations(self) -> Revocations: ...

    @property
    def redis_url(self) -> str: ...


class Refused(Exception):
    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def token_routes(services: TokenBackend) -> list[BaseRoute]:
    """The two routes, bound to ``services``."""

    async def token(request: Request) -> Response:
        try:
            return _json(await _issue(services, request))
        except Refused as exc:
            return _refusal(exc)
        except GatewayError as exc:
            log.warning("access token not issued: %s", exc.message)
            return _json(
                {"error": "temporarily_unavailable", "error_description": exc.message}, 503
            )

    async def revoke(request: Request) -> Response:
        try:
            secret = _bearer(request)
            found = await creds.find_credential(services.database, secret, services.secret)
            if found is not None and await creds.revoke_credential(services.database, found.id):
                await creds.announce_identity_change(services.redis_url, f"credential:{found.id}")
        except Refused as exc:
            return _refusal(exc)
        except GatewayError as exc:
            return _json(
                {"error": "temporarily_unavailable", "error_description": exc.message}, 503
            )
        # RFC 7009: an unknown or already revoked credential is not an error.
        return _json({"revoked": True})

    return [
        Route("/auth/token", token, methods=["POST"]),
        Route("/auth/revoke", revoke, methods=["POST"]),
    ]


async def _issue(services: TokenBackend, request: Request) -> dict[str, object]:
    secret = _bearer(request)
    repository = await _repository(request)
    db = services.database
    now = time.time()
    credential = await creds.find_credential(db, secret, services.secret)
    if credential is None:
        raise Refused(401, "invalid_grant", f"Gatehouse does not know this login; {RUN_LOGIN}")
    if credential.revoked_at is not None:
        raise Refused(
            401, "invalid_grant", f"your Gatehouse login was revoked (signed out); {RUN_LOGIN}"
        )
    if not credential.usable(now):
        raise Refused(401, "invalid_grant", f"your Gatehouse login expired; {RUN_LOGIN}")
    email = credential.email
    if services.revocations.user_deprovisioned(email) is not None:
        raise _deprovisioned(email)
    found = await directory_store.lookup(db, email, services.directory)
    if found is not None:
        team, roles, active = found
        if not active:
            raise _deprovisioned(email)
    else:
        team, roles = await _from_keys(db, email, now)
    token = services.access_tokens.mint(
        email=email,
        credential_id=credential.id,
        team=team,
        roles=roles,
        repository=repository,
        now=now,
    )
    await creds.touch_credential(db, credential.id, now)
    return {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": round(services.access_tokens.ttl),
        "email": email,
        "team": team,
        "repository": repository,
    }


def _deprovisioned(email: str) -> Refused:
    return Refused(
        403,
        "access_denied",
        f"{email} is deprovisioned in your identity provider; Gatehouse issues no tokens "
        f"for them (if that is a mistake, ask IT to restore the account, then {RUN_LOGIN})",
    )


def _bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value:
        raise Refused(
            401, "invalid_client", f"send the login as 'Authorization: Bearer'; {RUN_LOGIN}"
        )
    if creds.credential_id(value) is None:
        raise Refused(401, "invalid_grant", f"that is no Gatehouse login credential; {RUN_LOGIN}")
    return value


async def _repository(request: Request) -> str:
    body = await request.body()
    if not body.strip():
        return ""
    if len(body) > _MAX_BODY:
        raise Refused(400, "invalid_request", "the request body is too large")
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refused(400, "invalid_request", "the body must be JSON") from None
    value = parsed.get("repository", "") if isinstance(parsed, dict) else None
    if not isinstance(value, str) or len(value) > _MAX_REPOSITORY:
        raise Refused(
            400, "invalid_request", '"repository" must be a git remote URL or host/owner/name'
        )
    return normalize_repository(value)


async def _from_keys(db: Database, email: str, now: float) -> tuple[str, tuple[str, ...]]:
    """Team and roles of the human's newest live key; ``developer`` without one."""
    wanted = email.lower()
    live = [
        key
        for key in await db.list_keys()
        if key.email.lower() == wanted
        and not key.service
        and key.revoked_at is None
        and (key.expires_at is None or key.expires_at > now)
    ]
    if not live:
        return "", ("developer",)
    newest = live[-1]  # list_keys is oldest first
    return newest.team, newest.roles


def _refusal(exc: Refused) -> Response:
    headers = {"www-authenticate": f'Bearer error="{exc.error}"'} if exc.status == 401 else {}
    return _json({"error": exc.error, "error_description": exc.description}, exc.status, headers)


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(data),
        status_code=status,
        media_type="application/json",
        headers={"cache-control": "no-store", **(headers or {})},
    )
