"""Short-lived access tokens: what `gatehouse key-helper` prints for Claude Code.

An access token is ``gha_`` followed by a JWT (HS256) that Gatehouse signs with
a key derived from its secret (``HMAC(secret, "gatehouse-access-token")``, so a
token can never be mistaken for a key digest).  Its claims say who (``sub``,
``team``, ``roles``), for which repository (``repo``, normalised
``host/owner/name``), from which login credential (``cred``) and until when
(``exp``).  Verification is stateless — signature, issuer, audience, expiry
with a small leeway — and every verified token is remembered (bounded), so
Claude Code's repeated use of one token costs a dictionary lookup.  Whether the
credential or the human behind it is still allowed is not a property of the
token: `identity.revocation.Revocations` answers that from memory.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

ACCESS_TOKEN_PREFIX = "gha_"  # noqa: S105 - a prefix, not a secret
ISSUER = "gatehouse"
AUDIENCE = "gatehouse-gateway"
ALGORITHM = "HS256"
DEFAULT_LEEWAY = 5.0
"""Seconds of clock difference between replicas tolerated on ``exp`` and ``iat``."""
_KEY_LABEL = b"gatehouse-access-token"
_CACHE_SIZE = 8192


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    email: str
    team: str
    roles: tuple[str, ...]
    repository: str
    credential_id: str
    issued_at: float
    expires_at: float
    token_id: str


class TokenRejected(Exception):
    """Not a valid access token; ``reason`` is one of ``expired``, ``invalid``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class TokenExpired(TokenRejected):
    def __init__(self, claims: AccessClaims) -> None:
        super().__init__("expired", "the access token expired")
        self.claims = claims


def signing_key(secret: bytes) -> OctKey:
    """The HS256 key for access tokens, derived from the gateway's secret."""
    return OctKey.import_key(hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest())


def is_access_token(credential: str) -> bool:
    return credential.startswith(ACCESS_TOKEN_PREFIX)


class AccessTokens:
    """Mints and verifies access tokens with one gateway secret.  ``verify`` never awaits."""

    def __init__(self, secret: bytes, *, ttl: float, leeway: float = DEFAULT_LEEWAY) -> None:
        if ttl <= 0:
            raise ValueError("the access-token lifetime must be positive")
        self.ttl = ttl
        self.leeway = leeway
        self._key = signing_key(secret)
        self._verified: dict[str, AccessClaims] = {}

    def mint(
        self,
        *,
        email: str,
        credential_id: str,
        team: str = "",
        roles: tuple[str, ...] = ("developer",),
        repository: str = "",
        now: float | None = None,
    ) -> str:
        """A signed access token for (human, repository), valid for ``ttl`` seconds."""
        issued = int(time.time() if now is None else now)
        claims = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": email,
            "team": team,
            "roles": list(roles),
            "repo": repository,
            "cred": credential_id,
            "iat": issued,
            "exp": issued + max(1, round(self.ttl)),
            "jti": secrets.token_urlsafe(12),
        }
        return ACCESS_TOKEN_PREFIX + jwt.encode({"alg": ALGORITHM, "typ": "JWT"}, claims, self._key)

    def verify(self, token: str, *, now: float | None = None) -> AccessClaims:
        """The claims of a valid token; `TokenExpired` or `TokenRejected` otherwise."""
        now = time.time() if now is None else now
        claims = self._verified.get(token)
        if claims is None:
            claims = self._decode(token, now)
            if len(self._verified) >= _CACHE_SIZE:
                self._verified.clear()  # crude but bounded; a miss only costs a verification
            self._verified[token] = claims
        if claims.expires_at + self.leeway <= now:
            self._verified.pop(token, None)
            raise TokenExpired(claims)
        return claims

    def _decode(self, token: str, now: float) -> AccessClaims:
        if not token.startswith(ACCESS_TOKEN_PREFIX):
            raise TokenRejected("invalid", "not a Gatehouse access token")
        try:
            decoded = jwt.decode(
                token[len(ACCESS_TOKEN_PREFIX) :], self._key, algorithms=[ALGORITHM]
            )
        except (JoseError, ValueError) as exc:
            raise TokenRejected("invalid", "the access token's signature does not verify") from exc
        c = decoded.claims
        if c.get("iss") != ISSUER or c.get("aud") != AUDIENCE:
            raise TokenRejected("invalid", "the access token was not issued for this gateway")
        sub, cred, exp, iat = c.get("sub"), c.get("cred"), c.get("exp"), c.get("iat")
        if not (isinstance(sub, str) and sub and isinstance(cred, str) and cred):
            raise TokenRejected("invalid", "the access token names no human or login")
        if not (isinstance(exp, int) and isinstance(iat, int)):
            raise TokenRejected("invalid", "the access token has no lifetime")
        if iat > now + self.leeway:
            raise TokenRejected("invalid", "the access token was issued in the future")
        roles = c.get("roles")
        team, repo, jti = c.get("team", ""), c.get("repo", ""), c.get("jti", "")
        return AccessClaims(
            email=sub,
            team=team if isinstance(team, str) else "",
            roles=tuple(r for r in roles if isinstance(r, str))
            if isinstance(roles, list)
            else ("developer",),
            repository=repo if isinstance(repo, str) else "",
            credential_id=cred,
            issued_at=float(iat),
            expires_at=float(exp),
            token_id=jti if isinstance(jti, str) else "",
        )
