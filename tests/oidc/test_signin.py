"""Browser sign-in through a real OIDC provider: code + PKCE, the session cookie, the admin API."""

from __future__ import annotations

import base64
from dataclasses import replace
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest

from gatehouse.identity.oidc import OidcClient, SignInFailed
from gatehouse.settings import Settings
from tests.conftest import Gateway, running_gateway
from tests.oidc.conftest import GATEWAY, Browser, Provider

pytestmark = pytest.mark.oidc


async def test_sign_in_with_code_and_pkce_sets_a_session_the_admin_api_accepts(
    sso_gateway: Gateway, browser: Browser
) -> None:
    # The authorization request carries state, nonce and an S256 PKCE challenge.
    start = await sso_gateway.client.get("/auth/login", params={"next": "/admin/api/v1/whoami"})
    assert start.status_code == 303
    query = parse_qs(urlsplit(start.headers["location"]).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["state"][0] and query["nonce"][0] and query["code_challenge"][0]
    assert query["redirect_uri"] == [f"{GATEWAY}/auth/callback"]

    landed = await browser.sign_in(
        "ada@example.com", f"{GATEWAY}/auth/login?next=/admin/api/v1/whoami"
    )
    assert landed.status_code == 200, landed.text
    assert str(landed.url) == f"{GATEWAY}/admin/api/v1/whoami"
    assert landed.json() == {
        "email": "ada@example.com",
        "team": "payments",
        "roles": ["finance", "developer"],
        "key_id": "session",
    }
    set_cookie = next(
        h for h in landed.history if "gatehouse_session" in h.headers.get("set-cookie", "")
    ).headers["set-cookie"]
    assert "HttpOnly" in set_cookie
    assert "SameSite=lax" in set_cookie or "samesite=lax" in set_cookie.lower()

    # finance may read events; a developer-only human may not.
    events = await browser.client.get(f"{GATEWAY}/admin/api/v1/events")
    assert events.status_code == 200, events.text


async def test_roles_follow_the_idp_groups(browser: Browser) -> None:
    landed = await browser.sign_in(
        "bob@example.com", f"{GATEWAY}/auth/login?next=/admin/api/v1/whoami"
    )
    assert landed.json()["roles"] == ["developer"]
    assert landed.json()["team"] == "search"
    events = await browser.client.get(f"{GATEWAY}/admin/api/v1/events")
    assert events.status_code == 403
    assert "needs the role" in events.json()["error"]["message"]


async def test_cookie_requests_that_change_things_must_be_same_origin(browser: Browser) -> None:
    await browser.sign_in("ada@example.com")
    url = f"{GATEWAY}/admin/api/v1/budgets/team/payments"
    body = {"monthly_usd": "100"}
    cross = await browser.client.put(url, json=body, headers={"sec-fetch-site": "cross-site"})
    assert cross.status_code == 403
    assert "cross-site" in cross.json()["error"]["message"]
    no_headers = await browser.client.put(url, json=body)
    assert no_headers.status_code == 403
    other_origin = await browser.client.put(
        url, json=body, headers={"origin": "https://evil.example"}
    )
    assert other_origin.status_code == 403
    same = await browser.client.put(url, json=body, headers={"sec-fetch-site": "same-origin"})
    assert same.status_code == 200, same.text
    by_origin = await browser.client.put(url, json=body, headers={"origin": GATEWAY})
    assert by_origin.status_code == 200, by_origin.text


async def test_a_forged_or_missing_session_is_refused(sso_gateway: Gateway) -> None:
    async with _client(sso_gateway, {"gatehouse_session": "eyJlIjoiZXZlIn0.x.y"}) as client:
        forged = await client.get("/admin/api/v1/whoami")
    assert forged.status_code == 401
    assert "sign in again" in forged.json()["error"]["message"]
    none = await sso_gateway.client.get("/admin/api/v1/whoami")
    assert none.status_code == 401


async def test_state_mismatch_is_refused(sso_gateway: Gateway, browser: Browser) -> None:
    # Stop at the callback and tamper with the state the IdP sent back.
    browser.client.follow_redirects = False
    response = await browser.client.get(f"{GATEWAY}/auth/login")
    callback = await _to_callback(browser, response)
    parts = urlsplit(callback)
    query = parse_qs(parts.query)
    query["state"] = ["not-the-state"]
    tampered = f"{GATEWAY}/auth/callback?code={query['code'][0]}&state=not-the-state"
    refused = await browser.client.get(tampered)
    assert refused.status_code == 401
    assert "state mismatch" in refused.text
    assert browser.session_cookie() is None


async def test_a_replayed_code_is_refused(sso_gateway: Gateway, browser: Browser) -> None:
    browser.client.follow_redirects = False
    response = await browser.client.get(f"{GATEWAY}/auth/login")
    callback = await _to_callback(browser, response)
    login_cookie = browser.client.cookies.get("gatehouse_login")
    first = await browser.client.get(callback)
    assert first.status_code == 303
    assert browser.session_cookie()
    # An attacker who captured the callback URL and the login cookie replays them.
    async with _client(sso_gateway, {"gatehouse_login": login_cookie or ""}) as replay:
        again = await replay.get(callback)
    assert again.status_code == 401
    assert "would not exchange the sign-in code" in again.text


async def test_logout_clears_the_session(browser: Browser) -> None:
    await browser.sign_in("ada@example.com")
    assert browser.session_cookie()
    refused = await browser.client.post(f"{GATEWAY}/auth/logout")
    assert refused.status_code == 403
    done = await browser.client.post(f"{GATEWAY}/auth/logout", headers={"origin": GATEWAY})
    assert done.status_code == 200
    assert browser.session_cookie() is None
    assert (await browser.client.get(f"{GATEWAY}/admin/api/v1/whoami")).status_code == 401


async def test_next_never_leaves_gatehouse(browser: Browser) -> None:
    landed = await browser.sign_in("ada@example.com", f"{GATEWAY}/auth/login?next=//evil.example/x")
    assert urlsplit(str(landed.url)).netloc == "gatehouse"


async def test_without_an_issuer_the_routes_say_sso_is_not_configured(settings: Settings) -> None:
    async with running_gateway(replace(settings, oidc_issuer="")) as gw:
        for method, path in (("GET", "/auth/login"), ("GET", "/device"), ("POST", "/oauth/token")):
            response = await gw.client.request(method, path)
            assert response.status_code == 404
            assert "SSO is not configured" in response.json()["error"]["message"]


async def _to_callback(browser: Browser, response: httpx.Response) -> str:
    """Follow redirects by hand through the IdP until it sends the browser to our callback."""
    for _ in range(20):
        location = response.headers.get("location")
        if response.status_code in (302, 303) and location:
            url = str(response.url.join(location))
            if url.startswith(f"{GATEWAY}/auth/callback"):
                return url
            response = await browser.client.get(url)
        elif response.status_code == 200:
            response = await browser.submit_form(
                response, {"login": "ada@example.com", "password": "pw"}
            )
        else:
            raise AssertionError(f"{response.status_code} at {response.url}: {response.text[:300]}")
    raise AssertionError("never reached the callback")


def _client(gateway: Gateway, cookies: dict[str, str]) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.app),  # type: ignore[arg-type]
        base_url=GATEWAY,
        cookies=cookies,
    )


async def test_real_id_tokens_altered_expired_or_for_another_client_are_refused(
    browser: Browser, oidc_provider: Provider
) -> None:
    rp = OidcClient(
        issuer=oidc_provider.issuer,
        client_id=oidc_provider.client_id,
        client_secret=oidc_provider.client_secret,
        redirect_uri=f"{GATEWAY}/auth/callback",
    )
    attempt = await rp.begin()
    browser.client.follow_redirects = False
    callback = await _to_callback(browser, await browser.client.get(attempt.url))
    params = {k: v[0] for k, v in parse_qs(urlsplit(callback).query).items()}
    token = await rp.redeem(attempt, params)
    identity = await rp.validate(token, nonce=attempt.nonce)
    assert identity.email == "ada@example.com"
    assert identity.groups == ("team-payments", "gh-finance")

    header, payload, signature = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["groups"] = ["gh-platform"]
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    with pytest.raises(SignInFailed, match="signature"):
        await rp.validate(f"{header}.{forged}.{signature}", nonce=attempt.nonce)
    with pytest.raises(SignInFailed, match="expired"):
        await rp.validate(token, nonce=attempt.nonce, now=claims["exp"] + 61)
    with pytest.raises(SignInFailed, match="'nonce'"):
        await rp.validate(token, nonce="another sign-in")
    other = OidcClient(
        issuer=oidc_provider.issuer,
        client_id="another-client",
        client_secret="x",
        redirect_uri=f"{GATEWAY}/auth/callback",
    )
    with pytest.raises(SignInFailed, match="another application"):
        await other.validate(token, nonce=attempt.nonce)
