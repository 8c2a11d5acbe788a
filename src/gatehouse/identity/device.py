"""The OAuth 2.0 Device Authorization Grant (RFC 8628) behind `gatehouse login`.

1. The CLI asks for a grant (`DeviceFlow.start`): it gets a secret device code
   to poll with and a short user code (``BDWP-HQPK``) for the human.
2. The human opens ``<public_url>/device`` in a browser, signs in through the IdP
   and approves (or denies) the code (`DeviceFlow.decide`).
3. The CLI polls (`DeviceFlow.poll`) every ``interval`` seconds; once approved it
   receives a login credential (``ghr_…``), exactly once.

Grants live in the ``device_grants`` table, so any replica can answer any step;
only an HMAC digest of the device code is stored.  Polling answers follow the
RFC: ``authorization_pending``, ``slow_down`` (polled faster than the interval,
which then grows by 5 s), ``expired_token``, ``access_denied``.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import orjson
import sqlalchemy as sa

from gatehouse.errors import GatewayError
from gatehouse.identity.credentials import issue_credential
from gatehouse.identity.keys import digest
from gatehouse.store.db import Database
from gatehouse.store.schema import device_grants

CLIENT_ID = "gatehouse-cli"
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
# RFC 8628 6.1: consonants only (no words, no 0/O or 1/I confusion), easy to type.
USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
EXPIRES_IN = 600
INTERVAL = 5
SLOW_DOWN_STEP = 5
# A CLI sleeping exactly `interval` between polls must never be told to slow down.
_POLL_TOLERANCE = 0.5


class OAuthError(GatewayError):
    """An RFC 6749 error answer: ``{"error": …, "error_description": …}`` with status 400."""

    status = 400
    error_type = "invalid_request_error"
    oauth_error = "invalid_request"

    def oauth_body(self) -> bytes:
        return orjson.dumps({"error": self.oauth_error, "error_description": self.message})


class InvalidClient(OAuthError):
    status = 401
    oauth_error = "invalid_client"


class UnsupportedGrantType(OAuthError):
    oauth_error = "unsupported_grant_type"


class InvalidGrant(OAuthError):
    oauth_error = "invalid_grant"


class AuthorizationPending(OAuthError):
    oauth_error = "authorization_pending"


class SlowDown(OAuthError):
    oauth_error = "slow_down"


class ExpiredToken(OAuthError):
    oauth_error = "expired_token"


class AccessDenied(OAuthError):
    oauth_error = "access_denied"


@dataclass(frozen=True, slots=True)
class DeviceAuthorization:
    """The answer to ``POST /oauth/device_authorization`` (RFC 8628 3.2)."""

    device_code: str
    user_code: str
    verification_uri: str
    verification_uri_complete: str
    expires_in: int
    interval: int

    def to_json(self) -> dict[str, Any]:
        return {
            "device_code": self.device_code,
            "user_code": self.user_code,
            "verification_uri": self.verification_uri,
            "verification_uri_complete": self.verification_uri_complete,
            "expires_in": self.expires_in,
            "interval": self.interval,
        }


@dataclass(frozen=True, slots=True)
class Grant:
    """A device grant as the approval page shows it."""

    user_code: str
    client: str
    status: str  # pending | approved | denied | consumed
    email: str | None
    expires_at: float

    def expired(self, now: float) -> bool:
        return now >= self.expires_at


@dataclass(frozen=True, slots=True)
class Issued:
    """What the CLI receives once: the login credential and whose it is."""

    email: str
    credential_id: str
    refresh_token: str

    def to_json(self) -> dict[str, Any]:
        return {"refresh_token": self.refresh_token, "token_type": "Bearer", "email": self.email}


def new_user_code() -> str:
    raw = "".join(secrets.choice(USER_CODE_ALPHABET) for _ in range(8))
    return f"{raw[:4]}-{raw[4:]}"


def normalize_user_code(text: str) -> str:
    """What a human typed (``bdwp hqpk``, ``BDWPHQPK``) → ``BDWP-HQPK``; ``""`` if not a code."""
    raw = re.sub(r"[^A-Z]", "", text.upper())
    if len(raw) != 8 or any(c not in USER_CODE_ALPHABET for c in raw):
        return ""
    return f"{raw[:4]}-{raw[4:]}"


class DeviceFlow:
    """RFC 8628 over the ``device_grants`` table.  ``secret`` keys the code digests."""

    def __init__(
        self,
        db: Database,
        secret: bytes,
        public_url: str,
        *,
        expires_in: int = EXPIRES_IN,
        interval: int = INTERVAL,
    ) -> None:
        self._db = db
        self._secret = secret
        self.public_url = public_url.rstrip("/")
        self.expires_in = expires_in
        self.interval = interval

    async def start(
        self, client_id: str, client: str = "", *, now: float | None = None
    ) -> DeviceAuthorization:
        """A new grant for ``client_id`` (only ``gatehouse-cli`` is known)."""
        if client_id != CLIENT_ID:
            raise InvalidClient(f"unknown client_id {client_id[:64]!r}: use {CLIENT_ID!r}")
        now = time.time() if now is None else now
        # Expired grants are of no use to anyone; clear them while we are here.
        await self._db.execute(
            device_grants.delete().where(device_grants.c.expires_at < now - 3600),
            "clear expired device grants",
        )
        device_code = secrets.token_urlsafe(32)
        for _attempt in range(5):  # a user code collision is rare; try another
            user_code = new_user_code()
            row = {
                "device_code_digest": digest(self._secret, device_code),
                "user_code": user_code,
                "client": (client or client_id)[:500],
                "status": "pending",
                "email": None,
                "credential_id": None,
                "created_at": now,
                "expires_at": now + self.expires_in,
                "interval": self.interval,
                "last_polled_at": None,
            }
            rows = await self._db.fetch_all(
                sa.select(device_grants.c.user_code).where(device_grants.c.user_code == user_code),
                "check the user code",
            )
            if not rows:
                await self._db.execute(
                    device_grants.insert().values(row), "store the device grant", conflict=True
                )
                break
        else:  # pragma: no cover - 20^8 codes
            raise GatewayError("could not find a free user code; try again")
        verification_uri = f"{self.public_url}/device"
        return DeviceAuthorization(
            device_code=device_code,
            user_code=user_code,
            verification_uri=verification_uri,
            verification_uri_complete=f"{verification_uri}?user_code={user_code}",
            expires_in=self.expires_in,
            interval=self.interval,
        )

    async def find(self, user_code: str) -> Grant | None:
        """The grant a human typed the code of, or ``None``."""
        code = normalize_user_code(user_code)
        if not code:
            return None
        rows = await self._db.fetch_all(
            sa.select(device_grants).where(device_grants.c.user_code == code),
            "read the device grant",
        )
        return _grant(rows[0]) if rows else None

    async def decide(
        self, user_code: str, email: str, *, approve: bool, now: float | None = None
    ) -> Grant:
        """Approve or deny a pending grant for the signed-in ``email``.

        `InvalidGrant` when the code is unknown, expired or already decided.
        """
        now = time.time() if now is None else now
        grant = await self.find(user_code)
        if grant is None:
            raise InvalidGrant(
                f"no login is waiting for code {user_code[:16]!r}: check the code your "
                "terminal shows"
            )
        if grant.expired(now):
            raise InvalidGrant(
                f"code {grant.user_code} has expired: run `gatehouse login` again for a new one"
            )
        status = "approved" if approve else "denied"
        changed = await self._db.execute(
            device_grants.update()
            .where(device_grants.c.user_code == grant.user_code)
            .where(device_grants.c.status == "pending")
            .values(status=status, email=email),
            "decide the device grant",
        )
        if changed != 1:
            raise InvalidGrant(f"code {grant.user_code} was already used")
        return Grant(grant.user_code, grant.client, status, email, grant.expires_at)

    async def poll(self, client_id: str, device_code: str, *, now: float | None = None) -> Issued:
        """The CLI's poll: the login credential once approved, else the RFC's error."""
        if client_id != CLIENT_ID:
            raise InvalidClient(f"unknown client_id {client_id[:64]!r}: use {CLIENT_ID!r}")
        now = time.time() if now is None else now
        key = digest(self._secret, device_code)
        table = device_grants
        rows = await self._db.fetch_all(
            sa.select(table).where(table.c.device_code_digest == key), "read the device grant"
        )
        if not rows:
            raise InvalidGrant("unknown device code: run `gatehouse login` again")
        row = rows[0]
        if row["status"] == "consumed":
            raise InvalidGrant("this login was already completed; run `gatehouse login` again")
        if now >= row["expires_at"]:
            raise ExpiredToken(
                "the code was not approved in time: run `gatehouse login` again for a new one"
            )
        last, interval = row["last_polled_at"], int(row["interval"])
        if last is not None and now - last < interval - _POLL_TOLERANCE:
            await self._db.execute(
                table.update()
                .where(table.c.device_code_digest == key)
                .values(last_polled_at=now, interval=interval + SLOW_DOWN_STEP),
                "slow the device grant down",
            )
            raise SlowDown(f"polling too fast: wait {interval + SLOW_DOWN_STEP} s between polls")
        await self._db.execute(
            table.update().where(table.c.device_code_digest == key).values(last_polled_at=now),
            "record the poll",
        )
        if row["status"] == "pending":
            raise AuthorizationPending("waiting for the code to be approved in the browser")
        if row["status"] == "denied":
            raise AccessDenied(f"{row['email']} denied this login in the browser")
        # Approved: whichever poll flips it to consumed (on any replica) gets the credential.
        claimed = await self._db.execute(
            table.update()
            .where(table.c.device_code_digest == key, table.c.status == "approved")
            .values(status="consumed"),
            "complete the device grant",
        )
        if claimed != 1:
            raise InvalidGrant("this login was already completed; run `gatehouse login` again")
        email = str(row["email"])
        cred_id, secret = await issue_credential(self._db, email, str(row["client"]), self._secret)
        await self._db.execute(
            table.update().where(table.c.device_code_digest == key).values(credential_id=cred_id),
            "link the device grant to its credential",
        )
        return Issued(email=email, credential_id=cred_id, refresh_token=secret)


def _grant(row: sa.RowMapping) -> Grant:
    return Grant(
        user_code=row["user_code"],
        client=row["client"],
        status=row["status"],
        email=row["email"],
        expires_at=row["expires_at"],
    )
