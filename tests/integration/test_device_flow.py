"""The device flow's rules over HTTP (RFC 8628), with a session cookie minted by the test.

Signing in through a real IdP is covered in tests/oidc; here the browser's session is
issued directly, so every polling answer can be checked quickly and without Node.js.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gatehouse.identity.device import GRANT_TYPE, DeviceFlow, normalize_user_code
from gatehouse.settings import Settings
from gatehouse.store.schema import credentials, device_grants, users
from tests.conftest import Gateway, running_gateway

GATEWAY = "http://gatehouse"


@pytest.fixture
async def gw(settings: Settings) -> AsyncIterator[Gateway]:
    # The issuer is never contacted: these tests mint the session cookie themselves.
    sso = replace(
        settings, public_url=GATEWAY, oidc_issuer="http://127.0.0.1:9", oidc_client_id="x"
    )
    async with running_gateway(sso) as gateway:
        yield gateway


def signed_in(gw: Gateway, email: str = "ada@example.com") -> httpx.AsyncClient:
    sessions = gw.app.state.services.sessions  # type: ignore[attr-defined]
    cookie, _ = sessions.issue(email=email, name="Ada", team="payments", roles=("developer",))
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gw.app),  # type: ignore[arg-type]
        base_url=GATEWAY,
        cookies={"gatehouse_session": cookie},
    )


async def start(gw: Gateway) -> dict[str, Any]:
    response = await gw.client.post(
        "/oauth/device_authorization", data={"client_id": "gatehouse-cli"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return dict(response.json())


async def poll(gw: Gateway, device_code: str) -> httpx.Response:
    return await gw.client.post(
        "/oauth/token",
        data={"grant_type": GRANT_TYPE, "device_code": device_code, "client_id": "gatehouse-cli"},
    )


async def decide(gw: Gateway, user_code: str, action: str, **headers: str) -> httpx.Response:
    async with signed_in(gw) as browser:
        return await browser.post(
            "/device",
            data={"user_code": user_code, "action": action},
            headers=headers or {"origin": GATEWAY},
        )


async def test_authorization_answer_has_the_rfc_fields(gw: Gateway) -> None:
    grant = await start(gw)
    assert grant["expires_in"] == 600
    assert grant["interval"] == 5
    assert grant["verification_uri"] == f"{GATEWAY}/device"
    assert grant["verification_uri_complete"] == f"{GATEWAY}/device?user_code={grant['user_code']}"
    assert normalize_user_code(grant["user_code"]) == grant["user_code"]
    assert len(grant["device_code"]) >= 40
    rows = await gw.db.fetch_all(sa.select(device_grants), "read")
    assert rows[0]["device_code_digest"] != grant["device_code"]
    assert grant["device_code"] not in str(dict(rows[0]))


async def test_approved_login_returns_a_credential_exactly_once(gw: Gateway) -> None:
    grant = await start(gw)
    pending = await poll(gw, grant["device_code"])
    assert pending.status_code == 400
    assert pending.json()["error"] == "authorization_pending"
    approved = await decide(gw, grant["user_code"].lower().replace("-", " "), "approve")
    assert approved.status_code == 200, approved.text
    await _rewind_last_poll(gw)
    issued = await poll(gw, grant["device_code"])
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["token_type"] == "Bearer"
    assert body["email"] == "ada@example.com"
    assert body["refresh_token"].startswith("ghr_")
    stored = await gw.db.fetch_all(sa.select(credentials), "read")
    assert [r["email"] for r in stored] == ["ada@example.com"]
    await _rewind_last_poll(gw)
    again = await poll(gw, grant["device_code"])
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


async def test_polling_faster_than_the_interval_is_told_to_slow_down(gw: Gateway) -> None:
    grant = await start(gw)
    assert (await poll(gw, grant["device_code"])).json()["error"] == "authorization_pending"
    fast = await poll(gw, grant["device_code"])
    assert fast.status_code == 400
    assert fast.json() == {
        "error": "slow_down",
        "error_description": "polling too fast: wait 10 s between polls",
    }
    rows = await gw.db.fetch_all(sa.select(device_grants.c.interval), "read")
    assert rows[0]["interval"] == 10


async def test_an_expired_code_is_expired_token(gw: Gateway) -> None:
    grant = await start(gw)
    await gw.db.execute(
        device_grants.update().values(expires_at=time.time() - 1), "expire the grant"
    )
    expired = await poll(gw, grant["device_code"])
    assert expired.json()["error"] == "expired_token"
    late = await decide(gw, grant["user_code"], "approve")
    assert late.status_code == 400
    assert "expired" in late.text


async def test_a_denied_login_is_access_denied(gw: Gateway) -> None:
    grant = await start(gw)
    denied = await decide(gw, grant["user_code"], "deny")
    assert denied.status_code == 200
    assert "denied" in denied.text
    answer = await poll(gw, grant["device_code"])
    assert answer.json()["error"] == "access_denied"


async def test_approval_needs_a_same_origin_request(gw: Gateway) -> None:
    grant = await start(gw)
    cross = await decide(gw, grant["user_code"], "approve", **{"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403
    foreign = await decide(gw, grant["user_code"], "approve", origin="https://evil.example")
    assert foreign.status_code == 403
    assert (await poll(gw, grant["device_code"])).json()["error"] == "authorization_pending"


async def test_the_device_page_sends_strangers_to_sign_in_first(gw: Gateway) -> None:
    page = await gw.client.get("/device", params={"user_code": "BDWP-HQPK"})
    assert page.status_code == 303
    assert page.headers["location"] == "/auth/login?next=%2Fdevice%3Fuser_code%3DBDWP-HQPK"


async def test_the_device_page_shows_the_code_to_approve(gw: Gateway) -> None:
    grant = await start(gw)
    async with signed_in(gw) as browser:
        page = await browser.get("/device", params={"user_code": grant["user_code"]})
        unknown = await browser.get("/device", params={"user_code": "BBBB-BBBB"})
    assert page.status_code == 200
    assert grant["user_code"] in page.text
    assert "ada@example.com" in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert unknown.status_code == 404


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        (
            {"client_id": "someone-else", "grant_type": GRANT_TYPE, "device_code": "x"},
            401,
            "invalid_client",
        ),
        ({"client_id": "gatehouse-cli", "grant_type": "password"}, 400, "unsupported_grant_type"),
        (
            {"client_id": "gatehouse-cli", "grant_type": GRANT_TYPE, "device_code": "nope"},
            400,
            "invalid_grant",
        ),
    ],
)
async def test_bad_polls_get_oauth_errors(
    gw: Gateway, form: dict[str, str], status: int, error: str
) -> None:
    response = await gw.client.post("/oauth/token", data=form)
    assert response.status_code == status
    assert response.json()["error"] == error


async def test_only_the_gatehouse_cli_may_start_a_login(gw: Gateway) -> None:
    response = await gw.client.post("/oauth/device_authorization", data={"client_id": "other"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_user_codes_use_the_unambiguous_alphabet(gw: Gateway) -> None:
    flow = DeviceFlow(gw.db, b"secret", GATEWAY)
    codes = [(await flow.start("gatehouse-cli")).user_code for _ in range(20)]
    assert all(normalize_user_code(c) == c for c in codes)
    assert not set("".join(codes)) & set("AEIOUY01")
    assert normalize_user_code("bdwp hqpk") == "BDWP-HQPK"
    assert normalize_user_code("BDWP-HQP0") == ""


async def _rewind_last_poll(gw: Gateway) -> None:
    """As if the CLI had waited its interval since the last poll."""
    await gw.db.execute(
        device_grants.update().values(last_polled_at=time.time() - 60), "rewind the last poll"
    )


async def test_a_deprovisioned_humans_session_ends_at_once(gw: Gateway) -> None:
    async with signed_in(gw, "ada@example.com") as browser:
        assert (await browser.get("/admin/api/v1/whoami")).status_code == 200
        now = time.time()
        await gw.db.execute(
            users.insert().values(
                id="u1",
                user_name="ada@example.com",
                display_name="Ada",
                active=False,
                resource="{}",
                created_at=now,
                updated_at=now,
                deactivated_at=now,
            ),
            "deprovision ada",
        )
        await gw.app.state.services.identity.refresh(force=True)  # type: ignore[attr-defined]
        refused = await browser.get("/admin/api/v1/whoami")
        assert refused.status_code == 401
        page = await browser.get("/device")
        assert page.status_code == 303  # back to sign-in, where the IdP decides
