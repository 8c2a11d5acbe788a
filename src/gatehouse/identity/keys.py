"""Developer keys: minting, digests, and the in-memory snapshot every request checks.

A key is shown once when it is created; only ``HMAC-SHA256(secret, key)`` is
stored.  Requests are authenticated against an in-memory snapshot of all keys
(revoked and expired ones included, so the refusal can say why), refreshed
when the ``keys`` revision in the database moves: no database round-trip per
request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import string
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gatehouse.errors import AuthenticationFailed, InvalidRequest
from gatehouse.identity.principal import ApiKey, Principal
from gatehouse.store import channels
from gatehouse.store.db import Database

log = logging.getLogger("gatehouse.identity")

KEY_PREFIX = "ghk_"
# Key changes are announced here so every replica reloads at once, not at its next poll.
KEYS_CHANNEL = "gatehouse:keys"
_ALPHABET = string.ascii_letters + string.digits
_KEY_SHAPE = re.compile(r"^ghk_([a-z0-9]{8})_[A-Za-z0-9]{32,}$")
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

HOW_TO_GET_A_KEY = (
    "Ask your platform team for a Gatehouse key (gatehouse keys create --user YOU) "
    "and set it as ANTHROPIC_AUTH_TOKEN for Claude Code."
)


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly minted key: ``secret`` is shown once and never stored."""

    record: ApiKey
    secret: str


def load_secret(secret_key: str, data_dir: Path) -> bytes:
    """The HMAC secret: the configured one, else a generated file kept in ``data_dir``."""
    if secret_key:
        return secret_key.encode()
    path = data_dir / "secret_key"
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    return value


def digest(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m`` → seconds."""
    match = _DURATION.match(text.strip().lower())
    if not match:
        raise InvalidRequest(f"cannot read duration {text!r}: use a number and s, m, h, d or w")
    return int(match.group(1)) * _UNITS[match.group(2)]


def mint_key(
    secret: bytes,
    *,
    email: str,
    team: str = "",
    roles: tuple[str, ...] = ("developer",),
    expires_in: float | None = None,
    now: float | None = None,
    service: str = "",
) -> NewKey:
    """A new key for ``email``; with ``service`` a service key that ``email`` owns.

    A service key is for automation (CI, a bot), but its usage is still the owner's.
    """
    if "@" not in email:
        raise InvalidRequest(f"{email!r} is not an email address; keys belong to one human")
    if service != service.strip() or "," in service or len(service) > 200:
        raise InvalidRequest(f"service name {service!r}: use up to 200 characters, no commas")
    now = time.time() if now is None else now
    key_id = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))
    body = "".join(secrets.choice(_ALPHABET) for _ in range(40))
    plain = f"{KEY_PREFIX}{key_id}_{body}"
    record = ApiKey(
        id=key_id,
        digest=digest(secret, plain),
        email=email,
        team=team,
        roles=roles,
        created_at=now,
        expires_at=None if expires_in is None else now + expires_in,
        service=service,
    )
    return NewKey(record=record, secret=plain)


def credential_from_headers(headers: Mapping[str, str]) -> str:
    """The presented key: ``x-api-key`` or ``Authorization: Bearer`` (apiKeyHelper sends both)."""
    key = headers.get("x-api-key", "").strip()
    if key:
        return key
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    return ""


class KeyStore(channels.Followed):
    """The in-memory key snapshot.  ``authenticate`` never awaits."""

    channel = KEYS_CHANNEL
    what = "key"

    def __init__(
        self,
        db: Database,
        secret: bytes,
        *,
        refresh_interval: float = 1.0,
        deprovisioned: Callable[[], Awaitable[Mapping[str, float]]] | None = None,
    ) -> None:
        super().__init__(refresh_interval)
        self._db = db
        self._secret = secret
        self._by_digest: dict[str, ApiKey] = {}
        # Email → when the IdP deprovisioned them (store.identity.deprovisioned), read with
        # the keys: deprovisioning bumps the keys revision, so the reason arrives with them.
        self._load_deprovisioned = deprovisioned
        self._deprovisioned: Mapping[str, float] = {}

    async def revision(self) -> int:
        return await self._db.keys_revision()

    async def reload(self) -> None:
        keys = await self._db.list_keys()
        if self._load_deprovisioned is not None:
            self._deprovisioned = await self._load_deprovisioned()
        self._by_digest = {k.digest: k for k in keys}

    def lookup(self, key: str) -> ApiKey | None:
        return self._by_digest.get(digest(self._secret, key))

    def authenticate(self, headers: Mapping[str, str], *, now: float | None = None) -> Principal:
        """Resolve the request's credential to a Principal, or refuse with a message that helps."""
        key = credential_from_headers(headers)
        if not key:
            raise AuthenticationFailed(
                "No Gatehouse key on this request: send it as x-api-key or "
                "'Authorization: Bearer'. " + HOW_TO_GET_A_KEY
            )
        record = self.lookup(key)
        if record is None:
            shape = _KEY_SHAPE.match(key)
            named = f"key ghk_{shape.group(1)}…" if shape else "the key on this request"
            raise AuthenticationFailed(
                f"Gatehouse does not recognise {named}. Check ANTHROPIC_AUTH_TOKEN, "
                f"ANTHROPIC_API_KEY or your apiKeyHelper. " + HOW_TO_GET_A_KEY
            )
        now = time.time() if now is None else now
        gone = self._deprovisioned.get(record.email.lower())
        if gone is not None and (record.revoked_at is not None or record.created_at <= gone):
            raise AuthenticationFailed(_deprovisioned(record, gone))
        if record.revoked_at is not None:
            raise AuthenticationFailed(
                f"Gatehouse key ghk_{record.id}… for {record.email} was revoked on "
                f"{_day(record.revoked_at)}. " + HOW_TO_GET_A_KEY
            )
        if record.expires_at is not None and record.expires_at <= now:
            raise AuthenticationFailed(
                f"Gatehouse key ghk_{record.id}… for {record.email} expired on "
                f"{_day(record.expires_at)}. " + HOW_TO_GET_A_KEY
            )
        return record.principal()


def _deprovisioned(record: ApiKey, when: float) -> str:
    what = (
        f"service key ghk_{record.id}… ({record.service})"
        if record.service
        else (f"Gatehouse key ghk_{record.id}…")
    )
    owner = "its owner " if record.service else ""
    return (
        f"{what} no longer works: {owner}{record.email} was deprovisioned by your identity "
        f"provider (SCIM) on {_day(when)}, which revoked their keys. If that is a mistake, "
        "ask your IT team to restore the account in the IdP, then ask your platform team for "
        "a new key"
        + (
            f" (gatehouse keys create --service {record.service} --owner NEW-OWNER)."
            if record.service
            else "."
        )
    )


def _day(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC")


async def announce_key_change(redis_url: str, key_id: str) -> None:
    """Tell running gateways that keys changed (best effort: they also poll)."""
    await channels.announce(redis_url, KEYS_CHANNEL, key_id, "key")
