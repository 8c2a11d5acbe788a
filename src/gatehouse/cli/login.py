"""`gatehouse login`, `gatehouse logout`, `gatehouse whoami`: the developer's side of SSO.

``login`` runs the device flow (RFC 8628) against the gateway: it prints a URL and
a code, the developer approves the code in a browser signed in through the IdP,
and the login credential the gateway then hands out is stored by `credstore`
(0600 file, or the OS keyring).  It polls no faster than the gateway asks and
backs off by 5 s whenever the gateway says ``slow_down``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import typer

from gatehouse.cli import credstore
from gatehouse.cli.common import err, fail, out, run

CLIENT_ID = "gatehouse-cli"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
TIMEOUT_S = 15.0
LOGIN_HINT = "run `gatehouse login --gateway URL` to sign in"


def _quiet_http() -> None:
    # httpx logs every request at INFO; a developer's terminal wants the URL and code only.
    logging.getLogger("httpx").setLevel(logging.WARNING)


class LoginFailed(Exception):
    """The login did not complete; the message says why and what to do."""


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the developer is shown: where to go and which code to confirm."""

    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class Login:
    email: str
    secret: str


Sleep = Callable[[float], Awaitable[None]]


async def device_login(
    gateway: str,
    http: httpx.AsyncClient,
    show: Callable[[Prompt], None],
    *,
    sleep: Sleep = asyncio.sleep,
) -> Login:
    """Run the device flow against ``gateway`` and return the login credential."""
    gateway = gateway.rstrip("/")
    client = f"gatehouse-cli on {socket.gethostname()}"
    started = await _post(
        http,
        f"{gateway}/oauth/device_authorization",
        {"client_id": CLIENT_ID},
        headers={"user-agent": client},
    )
    if started.status_code != 200:
        raise LoginFailed(_refusal(gateway, started))
    grant = started.json()
    show(
        Prompt(
            user_code=str(grant["user_code"]),
            verification_uri=str(grant["verification_uri"]),
            verification_uri_complete=str(
                grant.get("verification_uri_complete") or grant["verification_uri"]
            ),
            expires_in=int(grant.get("expires_in", 600)),
        )
    )
    interval = float(grant.get("interval", 5))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + float(grant.get("expires_in", 600))
    form = {
        "grant_type": GRANT_TYPE,
        "device_code": str(grant["device_code"]),
        "client_id": CLIENT_ID,
    }
    while True:
        await sleep(interval)
        polled = await _post(http, f"{gateway}/oauth/token", form)
        if polled.status_code == 200:
            answer = polled.json()
            return Login(email=str(answer["email"]), secret=str(answer["refresh_token"]))
        error = _json(polled).get("error")
        if error == "authorization_pending":
            if loop.time() > deadline:
                raise LoginFailed("the code expired before it was approved; run `gatehouse login`")
            continue
        if error == "slow_down":
            interval += 5  # RFC 8628 3.5: for this and every later poll
            continue
        if error == "access_denied":
            raise LoginFailed("the login was denied in the browser")
        if error == "expired_token":
            raise LoginFailed(
                "the code expired before it was approved; run `gatehouse login` again"
            )
        raise LoginFailed(_refusal(gateway, polled))


async def whoami_online(stored: credstore.Stored, http: httpx.AsyncClient) -> dict[str, Any]:
    """Who the gateway says the stored login is: a fresh access token, then the admin API."""
    token = await http.post(
        f"{stored.gateway_url}/auth/token",
        json={},
        headers={"authorization": f"Bearer {stored.secret}", "user-agent": "gatehouse-cli"},
    )
    if token.status_code != 200:
        raise LoginFailed(_refusal(stored.gateway_url, token))
    access = str(token.json()["access_token"])
    me = await http.get(
        f"{stored.gateway_url}/admin/api/v1/whoami", headers={"authorization": f"Bearer {access}"}
    )
    if me.status_code != 200:
        raise LoginFailed(_refusal(stored.gateway_url, me))
    answer = me.json()
    return answer if isinstance(answer, dict) else {}


async def revoke(stored: credstore.Stored, http: httpx.AsyncClient) -> bool:
    """Ask the gateway to revoke the stored credential; ``False`` if it could not be asked."""
    try:
        response = await http.post(
            f"{stored.gateway_url}/auth/revoke",
            headers={"authorization": f"Bearer {stored.secret}", "user-agent": "gatehouse-cli"},
        )
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def login(
    gateway: Annotated[
        str | None,
        typer.Option(
            help="Gatehouse's URL (https://gatehouse.example.com); default: the last one."
        ),
    ] = None,
) -> None:
    """Sign in through your company's SSO and store a login credential for this machine."""
    _quiet_http()
    url = (gateway or _stored_gateway() or "").rstrip("/")
    if not url:
        fail("which Gatehouse? run `gatehouse login --gateway https://gatehouse.example.com`")
        raise typer.Exit(2)

    def show(prompt: Prompt) -> None:
        err.print(
            f"To sign in, open [bold]{prompt.verification_uri_complete}[/bold]\n"
            f"and check that it shows the code [bold]{prompt.user_code}[/bold] "
            f"(it expires in {prompt.expires_in // 60} minutes).",
            highlight=False,
        )

    async def go() -> Login:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
            return await device_login(url, http, show)

    try:
        done = run(go())
    except LoginFailed as exc:
        fail(str(exc))
        raise typer.Exit(1) from None
    except httpx.HTTPError as exc:
        fail(f"cannot reach Gatehouse at {url}: {type(exc).__name__}")
        raise typer.Exit(1) from None
    path = credstore.save(url, done.secret, done.email)
    err.print(f"Signed in to {url} as [bold]{done.email}[/bold] (login stored in {path}).")


def logout() -> None:
    """Forget this machine's login and revoke it at the gateway (best effort)."""
    _quiet_http()
    try:
        stored = credstore.load()
    except credstore.CredstoreError:
        stored = None
    revoked = False
    if stored is not None:
        found = stored

        async def go() -> bool:
            async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
                return await revoke(found, http)

        revoked = run(go())
    if not credstore.delete():
        err.print("Not signed in; nothing to do.")
        return
    if stored is not None and not revoked:
        err.print(
            f"[yellow]Signed out locally; could not reach {stored.gateway_url} to revoke the "
            "credential.[/yellow] Ask your platform team to revoke it if this machine is lost."
        )
        return
    err.print("Signed out.")


def whoami() -> None:
    """Who this machine is signed in as; asks the gateway when it is reachable."""
    _quiet_http()
    try:
        stored = credstore.load()
    except credstore.CredstoreError as exc:
        fail(f"{exc}; {LOGIN_HINT}")
        raise typer.Exit(1) from None
    if stored is None:
        fail(f"not signed in; {LOGIN_HINT}")
        raise typer.Exit(1)

    found = stored

    async def go() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as http:
            return await whoami_online(found, http)

    try:
        me = run(go())
    except httpx.HTTPError:
        out.print(f"{stored.email} at {stored.gateway_url}", highlight=False)
        err.print("[yellow]Gatehouse is not reachable: showing the stored login.[/yellow]")
        return
    except LoginFailed as exc:
        out.print(f"{stored.email} at {stored.gateway_url}", highlight=False)
        fail(str(exc))
        raise typer.Exit(1) from None
    roles = ", ".join(str(r) for r in me.get("roles", []))
    team = me.get("team") or "no team"
    out.print(
        f"{me.get('email', stored.email)} at {stored.gateway_url} ({team}; {roles})",
        highlight=False,
    )


async def _post(
    http: httpx.AsyncClient, url: str, form: dict[str, str], headers: dict[str, str] | None = None
) -> httpx.Response:
    return await http.post(
        url, data=form, headers={"accept": "application/json", **(headers or {})}
    )


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _refusal(gateway: str, response: httpx.Response) -> str:
    body = _json(response)
    description = body.get("error_description")
    if not description and isinstance(body.get("error"), dict):
        description = body["error"].get("message")  # Gatehouse's Anthropic-shaped errors
    if isinstance(description, str) and description:
        return f"Gatehouse refused: {description}"
    return f"{gateway} answered {response.status_code}; is that a Gatehouse with SSO configured?"


def _stored_gateway() -> str | None:
    try:
        stored = credstore.load()
    except credstore.CredstoreError:
        return None
    return stored.gateway_url if stored else None
