"""Who a request belongs to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Principal:
    """One authenticated human, resolved from a credential on every request."""

    email: str
    team: str = ""
    roles: tuple[str, ...] = ("developer",)
    key_id: str = ""
    repository: str = ""  # the signed ``repo`` claim of an access token (host/owner/name)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored developer key.  The secret itself is never stored, only its HMAC digest."""

    id: str
    digest: str
    email: str
    team: str = ""
    roles: tuple[str, ...] = ("developer",)
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    service: str = ""  # a service key: the automation it is for; ``email`` is its human owner

    def principal(self) -> Principal:
        return Principal(email=self.email, team=self.team, roles=self.roles, key_id=self.id)
