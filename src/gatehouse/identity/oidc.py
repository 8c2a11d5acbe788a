"""Gatehouse as an OpenID Connect relying party: authorization code flow with PKCE.

Three steps, each small enough to test on its own:

1. `OidcClient.begin` builds the IdP's authorization URL with a fresh ``state``,
   ``nonce`` and PKCE ``code_verifier`` (S256); the caller keeps the returned
   `LoginAttempt` (Gatehouse puts it in a short-lived signed cookie).
2. `OidcClient.complete` checks the returned ``state``, exchanges the code at the
   token endpoint (``client_secret_basic`` or ``client_secret_post``, whichever the
   IdP's discovery document prefers) and validates the ID token.
3. `validate_id_token` is pure: signature against the IdP's JWKS, ``iss``, ``aud``
   (our client id), ``exp``/``iat`` with clock skew, and the ``nonce``.

The discovery document is fetched once and cached; the JWKS is cached too and
fetched again when a token names a key id it does not hold (the IdP rotated).
Every failure is a `GatewayError` whose message says what to fix, and never
carries a code, a token or the client secret.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.common.urls import add_params_to_uri, url_encode  # type: ignore[import-untyped]
from authlib.oauth2.auth import ClientAuth  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from gatehouse.errors import AuthenticationFailed, InvalidRequest, UpstreamUnreachable

CLOCK_SKEW = 60
"""Seconds of clock difference tolerated between the IdP and Gatehouse."""

# Asymmetric only: an HS256 ID token would be signed with our own client secret.
ID_TOKEN_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")


class SignInFailed(AuthenticationFailed):
    """The sign-in could not be completed; the message says what to try next."""


class IdentityProviderUnavailable(UpstreamUnreachable):
    """The IdP could not be reached or answered something Gatehouse cannot use."""


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signed in, as the IdP vouched for them in a validated ID token."""

    email: str
    name: str
    groups: tuple[str, ...]
    subject: str


@dataclass(frozen=True, slots=True)
class Discovery:
    """What Gatehouse reads from the IdP's ``/.well-known/openid-configuration``."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    token_auth_method: str  # client_secret_basic or client_secret_post

    @classmethod
    def parse(cls, doc: Mapping[str, Any], expected_issuer: str) -> Discovery:
        issuer = str(doc.get("issuer", ""))
        if issuer.rstrip("/") != expected_issuer.rstrip("/"):
            raise IdentityProviderUnavailable(
                f"the IdP's discovery document names issuer {issuer!r}, not {expected_issuer!r}: "
                "set GATEHOUSE_OIDC_ISSUER to exactly the issuer the IdP announces"
            )
        missing = [
            k for k in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not doc.get(k)
        ]
        if missing:
            raise IdentityProviderUnavailable(
                f"the IdP's discovery document lacks {', '.join(missing)}"
            )
        methods = doc.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in methods else "client_secret_post"
        return cls(
            issuer=issuer,
            authorization_endpoint=str(doc["authorization_endpoint"]),
            token_endpoint=str(doc["token_endpoint"]),
            jwks_uri=str(doc["jwks_uri"]),
            token_auth_method=method,
        )


@dataclass(frozen=True, slots=True)
class LoginAttempt:
    """One sign-in in progress: the URL to send the browser to and what to check on return."""

    url: str
    state: str
    nonce: str
    code_verifier: str


def validate_id_token(
    token: str,
    keys: KeySet,
    *,
    issuer: str,
    client_id: str,
    nonce: str,
    groups_claim: str = "groups",
    now: float | None = None,
    leeway: int = CLOCK_SKEW,
) -> Identity:
    """The `Identity` in ``token`` if it is valid for us; `SignInFailed` otherwise."""
    try:
        decoded = jwt.decode(token, keys, algorithms=ID_TOKEN_ALGORITHMS)
    except BadSignatureError as exc:
        raise SignInFailed("the ID token's signature does not verify: sign in again") from exc
    except InvalidKeyIdError as exc:
        raise SignInFailed(
            "the ID token is signed with a key the IdP does not publish: sign in again"
        ) from exc
    except JoseError as exc:
        raise SignInFailed(f"the ID token cannot be read ({exc.error}): sign in again") from exc
    claims = decoded.claims
    registry = jwt.JWTClaimsRegistry(
        now=int(time.time() if now is None else now),
        leeway=leeway,
        iss={"essential": True, "value": issuer},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise SignInFailed(
            "the ID token has expired (or the clocks of Gatehouse and the IdP disagree by "
            f"more than {leeway} s): sign in again"
        ) from exc
    except (InvalidClaimError, MissingClaimError) as exc:
        raise SignInFailed(
            f"the ID token's {exc.claim!r} claim is not valid: sign in again"
        ) from exc
    except JoseError as exc:
        raise SignInFailed(f"the ID token is not valid ({exc.error}): sign in again") from exc
    if not _audience_ok(claims.get("aud"), claims.get("azp"), client_id):
        raise SignInFailed(
            "the ID token was issued to another application (its audience is not "
            "GATEHOUSE_OIDC_CLIENT_ID): check the client id configured at the IdP"
        )
    iat = claims.get("iat")
    if isinstance(iat, int | float) and iat > (time.time() if now is None else now) + leeway:
        raise SignInFailed("the ID token is issued in the future: check the clocks")
    email = claims.get("email")
    if not isinstance(email, str) or "@" not in email:
        raise SignInFailed(
            "the IdP did not say who you are by email: ask your platform team to release the "
            "'email' claim to Gatehouse (scope 'email')"
        )
    if claims.get("email_verified") is False:
        raise SignInFailed(f"the IdP has not verified {email}; verify it there and sign in again")
    return Identity(
        email=email.strip().lower(),
        name=str(claims.get("name") or email),
        groups=_groups(claims.get(groups_claim)),
        subject=str(claims["sub"]),
    )


def _audience_ok(aud: object, azp: object, client_id: str) -> bool:
    audiences = [aud] if isinstance(aud, str) else list(aud) if isinstance(aud, list) else []
    if client_id not in audiences:
        return False
    # OIDC Core 3.1.3.7: with several audiences, azp must name us.
    return len(audiences) == 1 or azp == client_id


def _groups(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(g) for g in value if isinstance(g, str | int))
    return ()


class OidcClient:
    """The relying party for one IdP; tests may hand in an httpx ``transport``."""

    def __init__(
        self,
        *,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        scopes: str = "openid email profile groups",
        groups_claim: str = "groups",
        transport: httpx.AsyncBaseTransport | None = None,
        leeway: int = CLOCK_SKEW,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self.redirect_uri = redirect_uri
        self.scopes = " ".join(s for s in scopes.split() if s) or "openid"
        self.groups_claim = groups_claim
        self.leeway = leeway
        # No pooled client kept open: sign-ins are rare, and a client per call
        # leaves nothing to close at shutdown.  Tests hand in a MockTransport.
        self._transport = transport
        self._discovery: Discovery | None = None
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()

    async def discovery(self) -> Discovery:
        """The IdP's endpoints, fetched once."""
        if self._discovery is None:
            async with self._lock:
                if self._discovery is None:
                    url = f"{self.issuer}/.well-known/openid-configuration"
                    self._discovery = Discovery.parse(await self._get_json(url), self.issuer)
        return self._discovery

    async def begin(self) -> LoginAttempt:
        """A new sign-in: the authorization URL and the secrets to check on return."""
        found = await self.discovery()
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        url = add_params_to_uri(
            found.authorization_endpoint,
            [
                ("response_type", "code"),
                ("client_id", self.client_id),
                ("redirect_uri", self.redirect_uri),
                ("scope", self.scopes),
                ("state", state),
                ("nonce", nonce),
                ("code_challenge", create_s256_code_challenge(verifier)),
                ("code_challenge_method", "S256"),
            ],
        )
        return LoginAttempt(url=str(url), state=state, nonce=nonce, code_verifier=verifier)

    async def complete(
        self, attempt: LoginAttempt, params: Mapping[str, str], *, now: float | None = None
    ) -> Identity:
        """Finish a sign-in from the callback's query ``params``; `SignInFailed` if it fails."""
        id_token = await self.redeem(attempt, params)
        return await self.validate(id_token, nonce=attempt.nonce, now=now)

    async def redeem(self, attempt: LoginAttempt, params: Mapping[str, str]) -> str:
        """Check the callback's ``state``; trade its code for the ID token (not yet validated)."""
        if "error" in params:
            reason = params.get("error_description") or params["error"]
            raise SignInFailed(f"the IdP refused the sign-in: {reason[:200]}")
        if not attempt.state or not hmac.compare_digest(
            params.get("state", "").encode(), attempt.state.encode()
        ):
            raise SignInFailed(
                "this sign-in does not match the one this browser started (state mismatch): "
                "start again from the sign-in page"
            )
        code = params.get("code", "")
        if not code:
            raise InvalidRequest("the IdP sent no authorization code: start the sign-in again")
        found = await self.discovery()
        token = await self._exchange(found, code, attempt.code_verifier)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInFailed("the IdP returned no ID token: is the 'openid' scope allowed?")
        return id_token

    async def validate(self, id_token: str, *, nonce: str, now: float | None = None) -> Identity:
        """Validate ``id_token``, fetching the JWKS again once if it names an unknown key."""
        found = await self.discovery()
        keys = await self._key_set(found, refresh=False)
        if _kid(id_token) not in {k.kid for k in keys.keys}:
            keys = await self._key_set(found, refresh=True)
        return validate_id_token(
            id_token,
            keys,
            issuer=found.issuer,
            client_id=self.client_id,
            nonce=nonce,
            groups_claim=self.groups_claim,
            now=now,
            leeway=self.leeway,
        )

    async def _exchange(self, found: Discovery, code: str, verifier: str) -> dict[str, Any]:
        body = url_encode(
            [
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.redirect_uri),
                ("code_verifier", verifier),
            ]
        )
        # Authlib encodes the client authentication the IdP announced (basic or post).
        auth = ClientAuth(self.client_id, self._secret, found.token_auth_method)
        url, headers, body = auth.prepare(
            "POST",
            found.token_endpoint,
            {
                "content-type": "application/x-www-form-urlencoded",
                "accept": "application/json",
            },
            body,
        )
        try:
            async with httpx.AsyncClient(timeout=10.0, transport=self._transport) as http:
                response = await http.post(url, headers=headers, content=body)
            token = response.json()
        except httpx.HTTPError as exc:
            raise IdentityProviderUnavailable(
                f"cannot reach the IdP's token endpoint {_origin(found.token_endpoint)}: "
                f"{type(exc).__name__}"
            ) from exc
        except ValueError as exc:
            raise IdentityProviderUnavailable(
                f"the IdP's token endpoint answered {response.status_code}, not JSON"
            ) from exc
        if not isinstance(token, dict):
            raise IdentityProviderUnavailable("the IdP's token endpoint did not answer an object")
        if response.status_code != 200 or "error" in token:
            # invalid_grant: the code was used already, expired, or the verifier is wrong;
            # invalid_client: the client id or secret Gatehouse has is not the IdP's.
            error = str(token.get("error", response.status_code))[:64]
            hint = (
                "check GATEHOUSE_OIDC_CLIENT_ID and GATEHOUSE_OIDC_CLIENT_SECRET"
                if error == "invalid_client"
                else "start the sign-in again"
            )
            raise SignInFailed(f"the IdP would not exchange the sign-in code ({error}): {hint}")
        return token

    async def _key_set(self, found: Discovery, *, refresh: bool) -> KeySet:
        if self._keys is None or refresh:
            doc = await self._get_json(found.jwks_uri)
            try:
                self._keys = KeySet.import_key_set(doc)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise IdentityProviderUnavailable("the IdP's JWKS cannot be read") from exc
        return self._keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=10.0, transport=self._transport) as http:
                response = await http.get(url, headers={"accept": "application/json"})
            response.raise_for_status()
            doc = response.json()
        except httpx.HTTPStatusError as exc:
            raise IdentityProviderUnavailable(
                f"the IdP answered {exc.response.status_code} for {url}: "
                "check GATEHOUSE_OIDC_ISSUER"
            ) from exc
        except httpx.HTTPError as exc:
            raise IdentityProviderUnavailable(
                f"cannot reach the IdP at {_origin(url)} ({type(exc).__name__}): "
                "check GATEHOUSE_OIDC_ISSUER and the network"
            ) from exc
        except ValueError as exc:
            raise IdentityProviderUnavailable(f"the IdP did not answer JSON at {url}") from exc
        if not isinstance(doc, dict):
            raise IdentityProviderUnavailable(f"the IdP did not answer a JSON object at {url}")
        return doc


def _kid(token: str) -> str | None:
    try:
        header = extract_compact(token.encode()).headers()
    except (JoseError, ValueError):
        return None
    kid = header.get("kid")
    return kid if isinstance(kid, str) else None


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"
