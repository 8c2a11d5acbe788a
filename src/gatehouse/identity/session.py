"""The browser session: a signed cookie saying who signed in through the IdP.

The ``gatehouse_session`` cookie carries email, team, roles and expiry, signed
with itsdangerous under a key derived from Gatehouse's secret (so every replica
sharing ``GATEHOUSE_SECRET_KEY`` accepts it, and no session table is needed).
It is HttpOnly and SameSite=Lax; requests that change something with only the
cookie must also come from Gatehouse's own pages (`same_origin`), the
header-based CSRF check Datasette uses: browsers send ``Sec-Fetch-Site`` and
``Origin`` and pages cannot forge them.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from gatehouse.identity.keys import load_secret
from gatehouse.identity.principal import Principal
from gatehouse.settings import Settings

SESSION_COOKIE = "gatehouse_session"
SESSION_TTL = 8 * 3600
"""Seconds a browser session lasts; signing in again is one redirect through the IdP."""


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in human, as the session cookie says."""

    email: str
    name: str
    team: str
    roles: tuple[str, ...]
    expires_at: float

    def principal(self) -> Principal:
        return Principal(email=self.email, team=self.team, roles=self.roles, key_id="session")


class Sessions:
    """Signs and reads Gatehouse's cookies.  The key is derived on first use.

    ``deprovisioned(email)`` says whether SCIM deactivated a human since: their
    session ends at once, not when the cookie expires.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        ttl: float = SESSION_TTL,
        deprovisioned: Callable[[str], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.ttl = ttl
        self.deprovisioned = deprovisioned or (lambda email: False)
        self._key: bytes | None = None

    @property
    def public_url(self) -> str:
        """Where browsers reach Gatehouse (``GATEHOUSE_PUBLIC_URL``, else host and port)."""
        url = self.settings.public_url or f"http://{self.settings.host}:{self.settings.port}"
        return url.rstrip("/")

    @property
    def secure(self) -> bool:
        """Mark cookies Secure when browsers reach Gatehouse over HTTPS."""
        return self.public_url.startswith("https://")

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if self._key is None:
            secret = load_secret(self.settings.secret_key, self.settings.data_dir)
            # A key of its own: a leaked cookie key must not help forge key digests.
            self._key = hmac.new(secret, b"gatehouse browser cookies v1", hashlib.sha256).digest()
        return URLSafeTimedSerializer(self._key, salt=f"gatehouse-{purpose}")

    def sign(self, purpose: str, value: Mapping[str, Any]) -> str:
        """``value`` signed for ``purpose`` (each purpose has its own salt)."""
        return self._serializer(purpose).dumps(dict(value))

    def unsign(self, purpose: str, token: str, *, max_age: float) -> dict[str, Any] | None:
        """What ``sign`` signed for ``purpose`` at most ``max_age`` seconds ago, else ``None``."""
        try:
            value = self._serializer(purpose).loads(token, max_age=int(max_age))
        except BadSignature:
            return None
        return value if isinstance(value, dict) else None

    def issue(
        self, *, email: str, name: str, team: str, roles: tuple[str, ...], now: float | None = None
    ) -> tuple[str, Session]:
        """A session cookie value for a human who just signed in."""
        now = time.time() if now is None else now
        session = Session(email, name, team, roles, expires_at=now + self.ttl)
        value = {"e": email, "n": name, "t": team, "r": list(roles), "x": session.expires_at}
        return self.sign("session", value), session

    def read(self, cookie: str, *, now: float | None = None) -> Session | None:
        """The session in ``cookie`` if it is authentic and not expired."""
        data = self.unsign("session", cookie, max_age=self.ttl)
        if data is None:
            return None
        try:
            session = Session(
                email=str(data["e"]),
                name=str(data["n"]),
                team=str(data["t"]),
                roles=tuple(str(r) for r in data["r"]),
                expires_at=float(data["x"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        if session.expires_at <= (time.time() if now is None else now):
            return None
        return None if self.deprovisioned(session.email) else session

    def same_origin(self, headers: Mapping[str, str]) -> bool:
        """Did a browser send this from Gatehouse's own pages?

        ``Sec-Fetch-Site: same-origin`` where the browser sends it; else an
        ``Origin`` equal to the public URL.  No header at all is refused: every
        browser that may hold the cookie sends at least one of them on a POST.
        """
        site = headers.get("sec-fetch-site")
        if site is not None:
            return site == "same-origin"
        origin = headers.get("origin")
        return origin is not None and origin.rstrip("/") == self.public_url
