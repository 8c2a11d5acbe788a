"""The device flow over HTTP (RFC 8628): what `gatehouse login` and the browser call.

``POST /oauth/device_authorization``  the CLI starts a login (form: ``client_id``)
``POST /oauth/token``                 the CLI polls (form: ``grant_type``, ``device_code``,
                                      ``client_id``); OAuth errors, 400
``GET /device[?user_code=…]``         the human enters or confirms the code (signed in first)
``POST /device``                      approve or deny; same-origin only (header CSRF check)

The rules themselves live in `gatehouse.identity.device`.
"""

from __future__ import annotations

import html
import logging
import time
from typing import Protocol
from urllib.parse import parse_qs

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gatehouse.identity.device import (
    CLIENT_ID,
    GRANT_TYPE,
    DeviceFlow,
    InvalidGrant,
    OAuthError,
    UnsupportedGrantType,
    normalize_user_code,
)
from gatehouse.identity.session import Session, Sessions
from gatehouse.web.pages import login_url, page

log = logging.getLogger("gatehouse.identity")

_MAX_FORM = 8 * 1024


class Browser(Protocol):
    """What the device routes need from sign-in (`web.auth.SignIn`)."""

    sessions: Sessions

    def session(self, request: Request) -> Session | None: ...

    def device_flow(self) -> DeviceFlow: ...


def device_routes(browser: Browser) -> list[BaseRoute]:
    async def authorize(request: Request) -> Response:
        form = await _form(request)
        client = f"{form.get('client_id', '')} ({request.headers.get('user-agent', '')[:200]})"
        try:
            grant = await browser.device_flow().start(form.get("client_id", ""), client)
        except OAuthError as exc:
            return _oauth_error(exc)
        return _json(grant.to_json())

    async def token(request: Request) -> Response:
        form = await _form(request)
        try:
            if form.get("grant_type") != GRANT_TYPE:
                raise UnsupportedGrantType(
                    f"this endpoint serves only grant_type={GRANT_TYPE} (RFC 8628)"
                )
            if not form.get("device_code"):
                raise InvalidGrant("device_code is required")
            issued = await browser.device_flow().poll(
                form.get("client_id", CLIENT_ID), form["device_code"]
            )
        except OAuthError as exc:
            return _oauth_error(exc)
        log.info(
            "device login completed for %s (credential %s)", issued.email, issued.credential_id
        )
        return _json(issued.to_json())

    async def show(request: Request) -> Response:
        typed = request.query_params.get("user_code", "")
        session = browser.session(request)
        if session is None:
            target = f"/device?user_code={typed}" if typed else "/device"
            return Response(status_code=303, headers={"location": login_url(target)})
        who = f"<p>Signed in as <b>{html.escape(session.email)}</b>.</p>"
        code = normalize_user_code(typed)
        if not code:
            return _enter_code(who, "Enter the code your terminal shows." if not typed else "")
        grant = await browser.device_flow().find(code)
        if grant is None or grant.status != "pending" or grant.expired(time.time()):
            return _enter_code(
                who, f"No login is waiting for code <code>{html.escape(code)}</code>.", status=404
            )
        return page(
            "Approve this login?",
            f"{who}<p>A terminal asks to sign in to Gatehouse as you with code "
            f"<code>{html.escape(code)}</code>.</p>"
            f"<p>Client: {html.escape(grant.client)}</p>"
            "<p>Approve only if you just ran <code>gatehouse login</code> and your terminal "
            "shows this code.</p>"
            "<form method='post' action='/device'>"
            f"<input type='hidden' name='user_code' value='{html.escape(code)}'>"
            "<button name='action' value='approve'>Approve</button>"
            "<button name='action' value='deny'>Deny</button></form>",
        )

    async def decide(request: Request) -> Response:
        if not browser.sessions.same_origin(request.headers):
            return page("Refused", "<p>Approve logins from Gatehouse's own page.</p>", status=403)
        session = browser.session(request)
        if session is None:
            return Response(status_code=303, headers={"location": login_url("/device")})
        form = await _form(request)
        approve = form.get("action") == "approve"
        try:
            grant = await browser.device_flow().decide(
                form.get("user_code", ""), session.email, approve=approve
            )
        except OAuthError as exc:
            return page("Not approved", f"<p>{html.escape(exc.message)}</p>", status=400)
        log.info("%s %s device code %s", session.email, grant.status, grant.user_code)
        if approve:
            return page(
                "Login approved",
                f"<p>Your terminal is now signed in as {html.escape(session.email)}. "
                "You can close this tab.</p>",
            )
        return page("Login denied", "<p>The terminal was refused. You can close this tab.</p>")

    return [
        Route("/oauth/device_authorization", authorize, methods=["POST"]),
        Route("/oauth/token", token, methods=["POST"]),
        Route("/device", show, methods=["GET"]),
        Route("/device", decide, methods=["POST"]),
    ]


def _enter_code(who: str, message: str, *, status: int = 200) -> Response:
    note = f"<p>{message}</p>" if message else ""
    return page(
        "Sign in a terminal",
        f"{who}{note}<form method='get' action='/device'>"
        "<input name='user_code' placeholder='BDWP-HQPK' autocomplete='off' autofocus>"
        "<button>Continue</button></form>",
        status=status,
    )


async def _form(request: Request) -> dict[str, str]:
    """An urlencoded body (what OAuth clients and HTML forms send), bounded; first values."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM:
            return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    return {key: values[0] for key, values in parsed.items() if values}


def _json(data: object) -> Response:
    return Response(
        orjson.dumps(data),
        media_type="application/json",
        headers={"cache-control": "no-store", "pragma": "no-cache"},
    )


def _oauth_error(exc: OAuthError) -> Response:
    return Response(
        exc.oauth_body(),
        status_code=exc.status,
        media_type="application/json",
        headers={"cache-control": "no-store"},
    )
