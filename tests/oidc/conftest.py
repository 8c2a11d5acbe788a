"""A real OpenID Connect provider (npm ``oidc-provider``, tests/oidc/provider.js) and a browser.

The provider runs once per session on 127.0.0.1 with users ada@example.com (groups
team-payments, gh-finance), bob@example.com (team-search) and pat@example.com
(team-infra, gh-platform); its development login form accepts any password.
Gatehouse runs in process at ``http://gatehouse``; `Browser` is an httpx client
that reaches Gatehouse through ASGI and the provider through a real socket,
follows redirects and fills in the provider's login and consent forms.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

from gatehouse.cli.processes import free_port, wait_for_port
from gatehouse.settings import Settings
from tests.conftest import Gateway, require, running_gateway

HERE = Path(__file__).parent
CLIENT_ID = "gatehouse-test"
CLIENT_SECRET = "gatehouse-test-secret"
GATEWAY = "http://gatehouse"


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET


@pytest.fixture(scope="session")
def e2e_port() -> int:
    """The port of a `gatehouse serve` the provider also accepts sign-ins for (e2e tests)."""
    return free_port()


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory, e2e_port: int) -> Iterator[Provider]:
    node = shutil.which("node")
    require(node is not None, "node is not installed: the SSO tests need Node.js")
    require(
        (HERE / "node_modules" / "oidc-provider").is_dir(),
        "tests/oidc/node_modules is missing: run `make test` (npm ci in tests/oidc)",
    )
    assert node is not None
    port = free_port()
    log = tmp_path_factory.mktemp("oidc") / "provider.log"
    env = {
        **os.environ,
        "OIDC_CLIENT_ID": CLIENT_ID,
        "OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_REDIRECT_URIS": (
            f"{GATEWAY}/auth/callback http://127.0.0.1:{e2e_port}/auth/callback"
        ),
    }
    with log.open("wb") as out:
        child = subprocess.Popen(
            [node, str(HERE / "provider.js"), str(port)],
            cwd=HERE,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            try:
                wait_for_port("127.0.0.1", port)
            except TimeoutError:
                raise AssertionError(
                    f"the OIDC provider did not start:\n{log.read_text()}"
                ) from None
            yield Provider(issuer=f"http://127.0.0.1:{port}")
        finally:
            child.terminate()
            child.wait(timeout=10)


@pytest.fixture
def sso_settings(settings: Settings, oidc_provider: Provider) -> Settings:
    return replace(
        settings,
        public_url=GATEWAY,
        oidc_issuer=oidc_provider.issuer,
        oidc_client_id=oidc_provider.client_id,
        oidc_client_secret=oidc_provider.client_secret,
        role_groups="finance=gh-finance,platform-admin=gh-platform",
    )


@pytest.fixture
async def sso_gateway(sso_settings: Settings) -> AsyncIterator[Gateway]:
    async with running_gateway(sso_settings) as gw:
        yield gw


class Browser:
    """A browser-equivalent client: cookies, redirects, the provider's forms."""

    def __init__(self, gateway: Gateway | None = None) -> None:
        # An in-process gateway answers at http://gatehouse; anything else is a real socket.
        mounts = {GATEWAY: httpx.ASGITransport(app=gateway.app)} if gateway else {}
        self.client = httpx.AsyncClient(
            mounts=mounts,  # type: ignore[arg-type]
            follow_redirects=True,
            timeout=10.0,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def sign_in(self, email: str, start: str = f"{GATEWAY}/auth/login") -> httpx.Response:
        """From a Gatehouse page to the IdP, through its login and consent, and back."""
        response = await self.client.get(start)
        for _ in range(4):
            if 'name="prompt"' not in response.text:
                return response  # past the IdP's login and consent forms, back at Gatehouse
            response = await self.submit_form(response, {"login": email, "password": "pw"})
        raise AssertionError(f"stuck at the IdP: {response.url}\n{response.text[:500]}")

    async def submit_form(self, page: httpx.Response, fields: dict[str, str]) -> httpx.Response:
        """Submit the first form of ``page``, its hidden inputs plus ``fields``."""
        form = re.search(r"<form[^>]*action=\"([^\"]+)\"[^>]*>(.*?)</form>", page.text, re.S)
        assert form, f"no form on {page.url}: {page.text[:500]}"
        data = {
            name: html.unescape(value)
            for name, value in re.findall(
                r"<input[^>]*type=\"hidden\"[^>]*name=\"([^\"]+)\"[^>]*value=\"([^\"]*)\"",
                form.group(2),
            )
        }
        if 'name="login"' in form.group(2):
            data.update(fields)
        action = urljoin(str(page.url), html.unescape(form.group(1)))
        return await self.client.post(action, data=data)

    def session_cookie(self) -> str | None:
        return self.client.cookies.get("gatehouse_session")


@pytest.fixture
async def browser(sso_gateway: Gateway) -> AsyncIterator[Browser]:
    b = Browser(sso_gateway)
    try:
        yield b
    finally:
        with contextlib.suppress(Exception):
            await b.aclose()
