"""Access tokens: minted for (human, repository), verified without the database."""

from __future__ import annotations

import base64
import time

import orjson
import pytest
from joserfc import jwt

from gatehouse.errors import AuthenticationFailed
from gatehouse.identity.authenticator import Authenticator
from gatehouse.identity.keys import KeyStore
from gatehouse.identity.revocation import Revocations
from gatehouse.identity.tokens import (
    ACCESS_TOKEN_PREFIX,
    AccessTokens,
    TokenExpired,
    TokenRejected,
    signing_key,
)

SECRET = b"unit-secret"
NOW = 1_800_000_000.0


def tokens(ttl: float = 3600, secret: bytes = SECRET) -> AccessTokens:
    return AccessTokens(secret, ttl=ttl)


def mint(t: AccessTokens | None = None, **kw: object) -> str:
    args: dict[str, object] = {
        "email": "dev@example.com",
        "credential_id": "abcdefabcdef",
        "team": "payments",
        "roles": ("developer", "eng-manager"),
        "repository": "github.com/acme/pay",
        "now": NOW,
    }
    args.update(kw)
    return (t or tokens()).mint(**args)  # type: ignore[arg-type]


def forge(claims: dict[str, object], secret: bytes = SECRET) -> str:
    return ACCESS_TOKEN_PREFIX + jwt.encode({"alg": "HS256"}, claims, signing_key(secret))


def good_claims(**kw: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": "gatehouse",
        "aud": "gatehouse-gateway",
        "sub": "dev@example.com",
        "cred": "abcdefabcdef",
        "iat": int(NOW),
        "exp": int(NOW) + 60,
    }
    claims.update(kw)
    return claims


def test_a_minted_token_verifies_to_its_claims() -> None:
    token = mint()
    assert token.startswith("gha_")
    claims = tokens().verify(token, now=NOW + 10)
    assert (claims.email, claims.team, claims.repository, claims.credential_id) == (
        "dev@example.com",
        "payments",
        "github.com/acme/pay",
        "abcdefabcdef",
    )
    assert claims.roles == ("developer", "eng-manager")
    assert claims.expires_at == NOW + 3600
    assert claims.token_id


def test_two_tokens_differ_even_in_the_same_second() -> None:
    assert mint() != mint()


def test_expired_tokens_are_refused_after_the_leeway() -> None:
    t = tokens(ttl=60)
    token = mint(t)
    assert t.verify(token, now=NOW + 60 + t.leeway - 0.5)
    with pytest.raises(TokenExpired) as caught:
        t.verify(token, now=NOW + 60 + t.leeway)
    assert caught.value.claims.email == "dev@example.com"
    # A cached verification does not outlive the token either.
    with pytest.raises(TokenExpired):
        t.verify(token, now=NOW + 10_000)


@pytest.mark.parametrize(
    ("claims", "detail"),
    [
        (good_claims(aud="someone-else"), "not issued for this gateway"),
        (good_claims(iss="evil"), "not issued for this gateway"),
        (good_claims(sub=""), "names no human"),
        (good_claims(cred=None), "names no human"),
        (good_claims(exp="tomorrow"), "no lifetime"),
        (good_claims(iat=int(NOW) + 3600), "issued in the future"),
    ],
)
def test_tokens_with_wrong_claims_are_refused(claims: dict[str, object], detail: str) -> None:
    with pytest.raises(TokenRejected) as caught:
        tokens().verify(forge(claims), now=NOW)
    assert detail in caught.value.detail
    assert caught.value.reason == "invalid"


def test_a_token_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(TokenRejected, match="signature"):
        tokens().verify(mint(tokens(secret=b"other")), now=NOW)
    with pytest.raises(TokenRejected, match="signature"):
        tokens().verify(forge(good_claims(), secret=b"other"), now=NOW)


def test_a_tampered_token_is_refused() -> None:
    token = mint()
    header, payload, signature = token[len(ACCESS_TOKEN_PREFIX) :].split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["repo"] = "github.com/acme/secret-stuff"
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    for bad in (
        f"{ACCESS_TOKEN_PREFIX}{header}.{forged}.{signature}",
        token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB"),
        "gha_not-a-jwt",
        "gha_",
    ):
        with pytest.raises(TokenRejected):
            tokens().verify(bad, now=NOW)


def test_alg_none_is_refused() -> None:
    def b64(data: object) -> str:
        return base64.urlsafe_b64encode(orjson.dumps(data)).rstrip(b"=").decode()

    unsigned = f"{ACCESS_TOKEN_PREFIX}{b64({'alg': 'none'})}.{b64(good_claims())}."
    with pytest.raises(TokenRejected):
        tokens().verify(unsigned, now=NOW)


# -- the authenticator: tokens plus the revocation snapshot --------------------


class Snapshot:
    def __init__(self, revocations: Revocations) -> None:
        self.revocations = revocations


def authenticator(revocations: Revocations | None = None) -> Authenticator:
    keys = KeyStore(None, SECRET)  # type: ignore[arg-type]  # never refreshed here
    return Authenticator(keys, tokens(), Snapshot(revocations or Revocations()))  # type: ignore[arg-type]


def test_a_token_becomes_a_principal_with_its_repository() -> None:
    principal = authenticator().authenticate({"x-api-key": mint()}, now=NOW + 1)
    assert principal.email == "dev@example.com"
    assert principal.team == "payments"
    assert principal.repository == "github.com/acme/pay"
    assert principal.key_id == "ghr_abcdefabcdef"


def test_keys_still_go_to_the_key_store() -> None:
    with pytest.raises(AuthenticationFailed, match="does not recognise key ghk_abcdefgh"):
        authenticator().authenticate({"x-api-key": "ghk_abcdefgh_" + "x" * 40}, now=NOW)


def test_an_expired_token_is_a_plain_401_that_never_echoes_it() -> None:
    token = mint()
    with pytest.raises(AuthenticationFailed) as caught:
        authenticator().authenticate({"authorization": f"Bearer {token}"}, now=NOW + 7200)
    assert "expired" in caught.value.message
    assert "gatehouse key-helper" in caught.value.message
    assert token not in caught.value.message
    assert token[len(ACCESS_TOKEN_PREFIX) :][:20] not in caught.value.message


def test_a_revoked_login_stops_its_tokens_and_says_run_gatehouse_login() -> None:
    revoked = Revocations(credentials={"abcdefabcdef": NOW - 5})
    with pytest.raises(AuthenticationFailed) as caught:
        authenticator(revoked).authenticate({"x-api-key": mint()}, now=NOW + 1)
    assert "revoked" in caught.value.message
    assert "gatehouse login" in caught.value.message
    # A login that expires later still works until then.
    later = Revocations(credentials={"abcdefabcdef": NOW + 100})
    assert authenticator(later).authenticate({"x-api-key": mint()}, now=NOW + 1)


def test_a_deprovisioned_human_is_stopped_whatever_the_case_of_their_email() -> None:
    gone = Revocations(users={"dev@example.com": NOW - 60})
    with pytest.raises(AuthenticationFailed) as caught:
        authenticator(gone).authenticate({"x-api-key": mint(email="Dev@Example.com")}, now=NOW + 1)
    assert "deprovisioned" in caught.value.message
    assert "gatehouse login" in caught.value.message


def test_a_garbage_token_is_refused_without_echo() -> None:
    with pytest.raises(AuthenticationFailed) as caught:
        authenticator().authenticate({"x-api-key": "gha_abc.def.ghi"}, now=time.time())
    assert "abc.def" not in caught.value.message
