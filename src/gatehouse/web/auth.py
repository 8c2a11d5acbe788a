"""Browser sign-in through the company IdP, and the routes of the device flow.

``GET /auth/login?next=/…``
    Starts an OIDC sign-in: a short-lived signed ``gatehouse_login`` cookie keeps
    the state, nonce and PKCE verifier; the browser goes to the IdP.
``GET /auth/callback``
    Checks the state, exchanges the code, validates the ID token, maps the IdP's
    groups to team and roles and sets the ``gatehouse_session`` cookie.
``POST /auth/logout``
    Clears the session cookie (same-origin requests only).
``GET``/``POST /device``, ``POST /oauth/device_authorization``, ``POST /oauth/token``
    The device flow (web/device.py).

Every route answers 404 saying SSO is not configured until ``GATEHOUSE_OIDC_ISSUER``
is set: without an IdP nobody can sign in, so nothing here would work.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gatehouse.errors import GatewayError, NotFound, error_body
from gatehouse.identity.device import DeviceFlow
from gatehouse.identity.directory import Directory
from gatehouse.identity.keys import load_secret
from gatehouse.identity.oidc import LoginAttempt, OidcClient
from gatehouse.identity.session import SESSION_COOKIE, Session, Sessions
from gatehouse.settings import Settings
from gatehouse.store.db import Database
from gatehouse.web.device import device_routes
from gatehouse.web.pages import page

log = logging.getLogger("gatehouse.identity")

LOGIN_COOKIE = "gatehouse_login"
LOGIN_TTL = 600
"""Seconds a browser may spend at the IdP before the sign-in must start again."""

NOT_CONFIGURED = (
    "SSO is not configured on this Gatehouse: set GATEHOUSE_OIDC_ISSUER, "
    "GATEHOUSE_OIDC_CLIENT_ID and GATEHOUSE_OIDC_CLIENT_SECRET (docs/identity.md)"
)

Endpoint = Callable[[Request], Awaitable[Response]]


class WebBackend(Protocol):
    """What the sign-in routes need from the running gateway (`app.Services`)."""

    settings: Settings
    sessions: Sessions

    @property
    def database(self) -> Database: ...


class SignIn:
    """The IdP, the group mapping and the cookies, built once per app from settings."""

    def __init__(self, backend: WebBackend) -> None:
        settings = backend.settings
        self.backend = backend
        self.sessions = backend.sessions
        self.directory = Directory.from_settings(settings)
        self.oidc = OidcClient(
            issuer=settings.oidc_issuer,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            redirect_uri=f"{self.sessions.public_url}/auth/callback",
            scopes=settings.oidc_scopes,
            groups_claim=settings.oidc_groups_claim,
        )
        self._secret: bytes | None = None

    def device_flow(self) -> DeviceFlow:
        if self._secret is None:
            settings = self.backend.settings
            self._secret = load_secret(settings.secret_key, settings.data_dir)
        return DeviceFlow(self.backend.database, self._secret, self.sessions.public_url)

    def session(self, request: Request) -> Session | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        return self.sessions.read(cookie) if cookie else None

    def set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            httponly=True,
            samesite="lax",
            secure=self.sessions.secure,
        )

    async def login(self, request: Request) -> Response:
        target = safe_next(request.query_params.get("next", "/"))
        attempt = await self.oidc.begin()
        response = RedirectResponse(attempt.url, status_code=303)
        value = {"s": attempt.state, "n": attempt.nonce, "v": attempt.code_verifier, "t": target}
        self.set_cookie(
            response, LOGIN_COOKIE, self.sessions.sign("login", value), max_age=LOGIN_TTL
        )
        return response

    async def callback(self, request: Request) -> Response:
        cookie = request.cookies.get(LOGIN_COOKIE, "")
        started = self.sessions.unsign("login", cookie, max_age=LOGIN_TTL) if cookie else None
        if started is None:
            return page(
                "Sign-in expired",
                "<p>This browser has no sign-in in progress (it took over ten minutes, or "
                "cookies are blocked). <a href='/auth/login'>Sign in again</a>.</p>",
                status=400,
            )
        attempt = LoginAttempt(
            url="",
            state=str(started["s"]),
            nonce=str(started["n"]),
            code_verifier=str(started["v"]),
        )
        try:
            identity = await self.oidc.complete(attempt, dict(request.query_params))
        except GatewayError as exc:
            log.info("sign-in refused: %s", exc.message)
            return page(
                "Sign-in failed",
                f"<p>{html.escape(exc.message)}.</p>"
                "<p><a href='/auth/login'>Sign in again</a>.</p>",
                status=exc.status,
            )
        if self.sessions.deprovisioned(identity.email):
            # The IdP vouched for them, but SCIM has since deactivated them here.
            return page(
                "Access removed",
                f"<p>{html.escape(identity.email)} was deprovisioned from Gatehouse by your "
                "identity provider. If that is a mistake, ask your IT team.</p>",
                status=403,
            )
        roles = self.directory.roles_for(identity.groups)
        team = self.directory.team_for(identity.groups)
        value, _ = self.sessions.issue(
            email=identity.email, name=identity.name, team=team, roles=roles
        )
        log.info("%s signed in (team %r, roles %s)", identity.email, team, ",".join(roles))
        response = RedirectResponse(safe_next(str(started.get("t", "/"))), status_code=303)
        self.set_cookie(response, SESSION_COOKIE, value, max_age=int(self.sessions.ttl))
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        if not self.sessions.same_origin(request.headers):
            return page("Not signed out", "<p>Sign out from Gatehouse's pages.</p>", status=403)
        response = page("Signed out", "<p>You are signed out of Gatehouse.</p>")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response


def safe_next(target: str) -> str:
    """A local path to return to after sign-in; anything else (``//evil``, URLs) is ``/``."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target:
        return "/"
    return target


def auth_routes(services: WebBackend) -> list[BaseRoute]:
    """The sign-in and device-flow routes; 404 with a message until OIDC is configured."""
    paths = [
        ("/auth/login", ["GET"]),
        ("/auth/callback", ["GET"]),
        ("/auth/logout", ["POST"]),
        ("/device", ["GET", "POST"]),
        ("/oauth/device_authorization", ["POST"]),
        ("/oauth/token", ["POST"]),
    ]
    if not services.settings.oidc_issuer:
        return [Route(path, _not_configured, methods=methods) for path, methods in paths]
    sign_in = SignIn(services)
    return [
        Route("/auth/login", _guarded(sign_in.login), methods=["GET"]),
        Route("/auth/callback", sign_in.callback, methods=["GET"]),
        Route("/auth/logout", sign_in.logout, methods=["POST"]),
        *device_routes(sign_in),
    ]


def _guarded(endpoint: Endpoint) -> Endpoint:
    """Browser-facing: an IdP that cannot be reached is a page saying so, not JSON."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except GatewayError as exc:
            log.warning("sign-in cannot start: %s", exc.message)
            return page(
                "Sign-in unavailable", f"<p>{html.escape(exc.message)}</p>", status=exc.status
            )

    return wrapped


async def _not_configured(request: Request) -> Response:
    error = NotFound(NOT_CONFIGURED)
    return Response(
        error_body(error.error_type, error.message),
        status_code=error.status,
        media_type="application/json",
        headers={"x-should-retry": "false"},
    )
