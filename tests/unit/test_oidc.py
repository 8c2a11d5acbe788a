"""ID-token validation and the relying party's edges, against an IdP whose keys the test holds.

The happy paths go through a real provider (tests/oidc); here the test signs tokens
itself, so it can make them expired, tampered, for another audience or from another key.
"""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from gatehouse.identity.oidc import (
    IdentityProviderUnavailable,
    LoginAttempt,
    OidcClient,
    SignInFailed,
    validate_id_token,
)

ISSUER = "https://idp.example"
CLIENT = "gatehouse"
NOW = 1_800_000_000
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"})


def claims(**overrides: Any) -> dict[str, Any]:
    base = {
        "iss": ISSUER,
        "sub": "u-1",
        "aud": CLIENT,
        "exp": NOW + 300,
        "iat": NOW,
        "nonce": "n-1",
        "email": "Ada@Example.com",
        "name": "Ada",
        "groups": ["team-payments", "gh-finance"],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(payload: dict[str, Any], key: Any = KEY, alg: str = "RS256") -> str:
    return jwt.encode({"alg": alg, "kid": key.kid or "k1"}, payload, key)


def check(token: str, *, now: float = NOW, nonce: str = "n-1", keys: Any = None) -> Any:
    return validate_id_token(
        token,
        keys or KeySet([KEY]),
        issuer=ISSUER,
        client_id=CLIENT,
        nonce=nonce,
        now=now,
    )


def test_a_valid_token_names_the_human_and_their_groups() -> None:
    identity = check(sign(claims()))
    assert identity.email == "ada@example.com"
    assert identity.groups == ("team-payments", "gh-finance")
    assert identity.subject == "u-1"


def test_clock_skew_of_a_minute_is_tolerated_and_no_more() -> None:
    token = sign(claims())
    check(token, now=NOW + 300 + 59)
    with pytest.raises(SignInFailed, match="expired"):
        check(token, now=NOW + 300 + 61)


def test_a_token_from_the_future_is_refused() -> None:
    with pytest.raises(SignInFailed):
        check(sign(claims(iat=NOW + 3600, exp=NOW + 7200)))


def test_a_tampered_payload_fails_the_signature() -> None:
    header, payload, signature = sign(claims()).split(".")
    data = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
    data["groups"] = ["gh-platform"]
    forged = base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()
    with pytest.raises(SignInFailed, match="signature"):
        check(f"{header}.{forged}.{signature}")


def test_a_token_signed_with_another_key_under_the_same_kid_is_refused() -> None:
    impostor = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    with pytest.raises(SignInFailed, match="signature"):
        check(sign(claims(), impostor))


def test_a_symmetric_token_signed_with_a_guessable_secret_is_refused() -> None:
    secret = OctKey.import_key(b"the-client-secret-of-32-bytes-at-least!!")
    with pytest.raises(SignInFailed):
        check(sign(claims(), secret, "HS256"), keys=KeySet([KEY, secret]))


@pytest.mark.parametrize(
    ("override", "why"),
    [
        ({"aud": "another-app"}, "another application"),
        ({"aud": ["another-app", CLIENT]}, "another application"),  # no azp naming us
        ({"iss": "https://evil.example"}, "'iss'"),
        ({"nonce": "replayed"}, "'nonce'"),
        ({"nonce": None}, "'nonce'"),
        ({"exp": None}, "'exp'"),
        ({"email": None}, "email"),
        ({"email_verified": False}, "not verified"),
    ],
)
def test_invalid_claims_are_refused_with_the_reason(override: dict[str, Any], why: str) -> None:
    with pytest.raises(SignInFailed, match=why):
        check(sign(claims(**override)))


def test_several_audiences_with_azp_naming_us_are_accepted() -> None:
    check(sign(claims(aud=["another-app", CLIENT], azp=CLIENT)))


class FakeIdP:
    """Discovery, JWKS and a token endpoint, served through httpx.MockTransport."""

    def __init__(self) -> None:
        self.keys = [KEY]
        self.jwks_fetches = 0
        self.token_requests: list[httpx.Request] = []
        self.methods = ["client_secret_basic", "client_secret_post"]
        self.id_token = ""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/.well-known/openid-configuration":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "authorization_endpoint": f"{ISSUER}/authorize",
                    "token_endpoint": f"{ISSUER}/token",
                    "jwks_uri": f"{ISSUER}/jwks",
                    "token_endpoint_auth_methods_supported": self.methods,
                },
            )
        if path == "/jwks":
            self.jwks_fetches += 1
            return httpx.Response(200, json=KeySet(self.keys).as_dict(private=False))
        if path == "/token":
            self.token_requests.append(request)
            if not self.id_token:
                return httpx.Response(400, json={"error": "invalid_grant"})
            return httpx.Response(
                200, json={"access_token": "at", "token_type": "Bearer", "id_token": self.id_token}
            )
        return httpx.Response(404)


def client(idp: FakeIdP, issuer: str = ISSUER) -> OidcClient:
    return OidcClient(
        issuer=issuer,
        client_id=CLIENT,
        client_secret="s3cret-value",
        redirect_uri="https://gatehouse.example/auth/callback",
        transport=httpx.MockTransport(idp),
    )


async def test_the_authorization_url_carries_state_nonce_and_an_s256_challenge() -> None:
    attempt = await client(FakeIdP()).begin()
    query = parse_qs(urlsplit(attempt.url).query)
    assert query["state"] == [attempt.state]
    assert query["nonce"] == [attempt.nonce]
    assert query["code_challenge_method"] == ["S256"]
    assert query["code_challenge"][0] != attempt.code_verifier
    assert query["scope"] == ["openid email profile groups"]


async def test_a_rotated_key_is_fetched_once_the_token_names_it() -> None:
    idp = FakeIdP()
    rp = client(idp)
    await rp.validate(sign(claims(exp=int(time.time()) + 300, iat=int(time.time()))), nonce="n-1")
    assert idp.jwks_fetches == 1
    rotated = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    idp.keys = [rotated]
    fresh = claims(exp=int(time.time()) + 300, iat=int(time.time()))
    identity = await rp.validate(sign(fresh, rotated), nonce="n-1")
    assert identity.email == "ada@example.com"
    assert idp.jwks_fetches == 2


async def test_the_code_exchange_sends_the_verifier_and_basic_client_auth() -> None:
    idp = FakeIdP()
    idp.id_token = sign(claims(exp=int(time.time()) + 300, iat=int(time.time())))
    rp = client(idp)
    attempt = LoginAttempt(url="", state="st", nonce="n-1", code_verifier="v" * 43)
    identity = await rp.complete(attempt, {"state": "st", "code": "c0de"})
    assert identity.email == "ada@example.com"
    sent = idp.token_requests[0]
    form = parse_qs(sent.content.decode())
    assert form["code_verifier"] == ["v" * 43]
    assert form["code"] == ["c0de"]
    assert sent.headers["authorization"].startswith("Basic ")
    assert "client_secret" not in form


async def test_client_secret_post_when_that_is_all_the_idp_supports() -> None:
    idp = FakeIdP()
    idp.methods = ["client_secret_post"]
    idp.id_token = sign(claims(exp=int(time.time()) + 300, iat=int(time.time())))
    attempt = LoginAttempt(url="", state="st", nonce="n-1", code_verifier="v" * 43)
    await client(idp).complete(attempt, {"state": "st", "code": "c0de"})
    form = parse_qs(idp.token_requests[0].content.decode())
    assert form["client_secret"] == ["s3cret-value"]


async def test_a_refused_exchange_says_to_start_again_and_leaks_nothing() -> None:
    attempt = LoginAttempt(url="", state="st", nonce="n-1", code_verifier="v" * 43)
    with pytest.raises(SignInFailed, match="start the sign-in again") as refused:
        await client(FakeIdP()).complete(attempt, {"state": "st", "code": "c0de"})
    assert "c0de" not in refused.value.message
    assert "s3cret" not in refused.value.message


async def test_state_mismatch_and_idp_errors_are_refused_before_any_exchange() -> None:
    idp = FakeIdP()
    attempt = LoginAttempt(url="", state="st", nonce="n-1", code_verifier="v" * 43)
    with pytest.raises(SignInFailed, match="state mismatch"):
        await client(idp).complete(attempt, {"state": "other", "code": "c"})
    with pytest.raises(SignInFailed, match="state mismatch"):
        await client(idp).complete(attempt, {"state": "ünïcode", "code": "c"})
    with pytest.raises(SignInFailed, match="refused the sign-in: access_denied"):
        await client(idp).complete(attempt, {"error": "access_denied"})
    assert idp.token_requests == []


async def test_discovery_problems_say_which_setting_to_check() -> None:
    with pytest.raises(IdentityProviderUnavailable, match="GATEHOUSE_OIDC_ISSUER"):
        await client(FakeIdP(), issuer="https://idp.example/other").discovery()

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    rp = OidcClient(
        issuer=ISSUER,
        client_id=CLIENT,
        client_secret="x",
        redirect_uri="https://g/auth/callback",
        transport=httpx.MockTransport(unreachable),
    )
    with pytest.raises(IdentityProviderUnavailable, match="cannot reach the IdP"):
        await rp.begin()
