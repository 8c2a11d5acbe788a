"""`gatehouse login` end to end: device flow, a browser signing in at the real IdP, approval."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from gatehouse.cli import credstore
from gatehouse.cli.login import LoginFailed, Prompt, device_login
from tests.conftest import Gateway
from tests.oidc.conftest import GATEWAY, Browser

pytestmark = pytest.mark.oidc


def cli_client(gateway: Gateway) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway.app))  # type: ignore[arg-type]


async def test_login_through_the_idp_stores_a_private_credential(
    sso_gateway: Gateway, browser: Browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    shown: list[Prompt] = []
    approvals: list[httpx.Response] = []

    async def the_developer_approves(seconds: float) -> None:
        # While the CLI waits, the developer opens the URL it printed.
        assert seconds == 5
        if approvals:
            return
        page = await browser.sign_in("ada@example.com", shown[0].verification_uri_complete)
        assert page.url.path == "/device"
        assert shown[0].user_code in page.text
        approvals.append(
            await browser.client.post(
                f"{GATEWAY}/device",
                data={"user_code": shown[0].user_code, "action": "approve"},
                headers={"origin": GATEWAY},
            )
        )

    async with cli_client(sso_gateway) as http:
        login = await device_login(GATEWAY, http, shown.append, sleep=the_developer_approves)
    assert approvals[0].status_code == 200, approvals[0].text
    assert login.email == "ada@example.com"
    assert login.secret.startswith("ghr_")

    path = credstore.save(GATEWAY, login.secret, login.email, use_keyring=False)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = credstore.load()
    assert stored is not None
    assert (stored.email, stored.gateway_url) == ("ada@example.com", GATEWAY)


async def test_login_reports_a_denial(sso_gateway: Gateway, browser: Browser) -> None:
    shown: list[Prompt] = []

    async def the_developer_denies(seconds: float) -> None:
        await browser.sign_in("bob@example.com", shown[0].verification_uri_complete)
        await browser.client.post(
            f"{GATEWAY}/device",
            data={"user_code": shown[0].user_code, "action": "deny"},
            headers={"sec-fetch-site": "same-origin"},
        )

    async with cli_client(sso_gateway) as http:
        with pytest.raises(LoginFailed, match="denied"):
            await device_login(GATEWAY, http, shown.append, sleep=the_developer_denies)


async def test_login_backs_off_when_told_to_slow_down(sso_gateway: Gateway) -> None:
    waits: list[float] = []

    async def impatient(seconds: float) -> None:
        waits.append(seconds)  # returns at once: the gateway sees polls too close together
        if len(waits) == 3:
            raise RuntimeError("enough")

    async with cli_client(sso_gateway) as http:
        with pytest.raises(RuntimeError, match="enough"):
            await device_login(GATEWAY, http, lambda prompt: None, sleep=impatient)
    # pending, then slow_down: the CLI adds 5 s for this and every later poll.
    assert waits == [5, 5, 10]
