"""One place that turns a request's credential into a Principal.

Two kinds of credential reach ``/v1``: developer keys (``ghk_…``, the KeyStore
snapshot) and short-lived access tokens (``gha_…``, minted by ``POST
/auth/token`` for `gatehouse key-helper`).  Both are decided from memory: no
database round-trip, no await.

How a refusal is worded matters to Claude Code (see errors.py): with an
``apiKeyHelper`` it re-runs the helper after any 401 and retries, at most three
times in about two seconds because of ``retry-after``.  An expired token is
therefore an ordinary 401 — the helper prints a fresh token and the retry
goes through.  A revoked login or a deprovisioned human is a 401 that says
why and to run `gatehouse login`; the helper itself then fails the same way,
which ends the run.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime

from gatehouse.errors import AuthenticationFailed
from gatehouse.identity.keys import KeyStore, credential_from_headers
from gatehouse.identity.principal import Principal
from gatehouse.identity.revocation import IdentityWatcher, Revocations
from gatehouse.identity.tokens import (
    AccessTokens,
    TokenExpired,
    TokenRejected,
    is_access_token,
)

RUN_LOGIN = "Run `gatehouse login` to sign in again."


class Authenticator:
    """Keys and access tokens → `Principal`, or an `AuthenticationFailed` that helps."""

    def __init__(
        self, keys: KeyStore, tokens: AccessTokens, identity: IdentityWatcher | None = None
    ) -> None:
        self.keys = keys
        self.tokens = tokens
        self.identity = identity

    @property
    def revocations(self) -> Revocations:
        return self.identity.revocations if self.identity is not None else Revocations()

    def authenticate(self, headers: Mapping[str, str], *, now: float | None = None) -> Principal:
        """Resolve the request's credential; never awaits, never echoes a token."""
        credential = credential_from_headers(headers)
        if not is_access_token(credential):
            return self.keys.authenticate(headers, now=now)
        return self.principal_for_token(credential, now=now)

    def principal_for_token(self, token: str, *, now: float | None = None) -> Principal:
        now = time.time() if now is None else now
        try:
            claims = self.tokens.verify(token, now=now)
        except TokenExpired as exc:
            raise AuthenticationFailed(
                f"Your Gatehouse access token for {exc.claims.email} expired at "
                f"{_clock(exc.claims.expires_at)}. Claude Code fetches a new one from "
                "`gatehouse key-helper` and retries; if this keeps happening, check that "
                "apiKeyHelper in ~/.claude/settings.json runs `gatehouse key-helper`."
            ) from None
        except TokenRejected as exc:
            raise AuthenticationFailed(
                f"Gatehouse does not accept this access token: {exc.detail}. "
                "Check apiKeyHelper in ~/.claude/settings.json (it should run "
                "`gatehouse key-helper`). " + RUN_LOGIN
            ) from None
        revocations = self.revocations
        gone = revocations.user_deprovisioned(claims.email)
        if gone is not None:
            raise AuthenticationFailed(
                f"{claims.email} was deprovisioned by your identity provider on {_day(gone)}; "
                "Gatehouse no longer accepts their tokens. If that is a mistake, ask your "
                "IT team to restore the account, then " + RUN_LOGIN[0].lower() + RUN_LOGIN[1:]
            )
        revoked = revocations.credential_revoked(claims.credential_id)
        if revoked is not None and revoked <= now:
            raise AuthenticationFailed(
                f"The Gatehouse login of {claims.email} (ghr_{claims.credential_id}…) was "
                f"revoked or expired on {_day(revoked)}. " + RUN_LOGIN
            )
        return Principal(
            email=claims.email,
            team=claims.team,
            roles=claims.roles,
            key_id="ghr_" + claims.credential_id,
            repository=claims.repository,
        )


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%H:%M:%S UTC")
