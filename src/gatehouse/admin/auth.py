"""Who may call an admin route: the caller's credential, their roles, their teams.

Every route declares the roles it admits with `Allow`; a caller holding none of
them is refused with 403 naming the roles that would do.  The admin API takes
the same credentials as the gateway (``Authorization: Bearer`` or
``x-api-key``) and refuses in the same Anthropic-shaped way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.requests import Request

from gatehouse.errors import PermissionDenied
from gatehouse.identity.principal import Principal
from gatehouse.identity.roles import ENG_MANAGER, ROLES


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated human behind an admin request."""

    principal: Principal

    @property
    def email(self) -> str:
        return self.principal.email

    def has(self, *roles: str) -> bool:
        return any(role in self.principal.roles for role in roles)

    def team_scope(self, *unscoped: str) -> str | None:
        """None if a role in ``unscoped`` lets them see every team; else the one team they manage.

        An engineering manager manages the team their credential names.
        """
        if self.has(*unscoped):
            return None
        if self.has(ENG_MANAGER) and self.principal.team:
            return self.principal.team
        raise PermissionDenied(
            f"{self.email} manages no team: an eng-manager credential must name its team"
        )


Authenticate = Callable[[Mapping[str, str]], Principal]


class Allow:
    """A FastAPI dependency: the caller, if they hold one of ``roles``."""

    def __init__(self, *roles: str) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}")
        self.roles = frozenset(roles)

    def __call__(self, request: Request) -> Caller:
        authenticate: Authenticate = request.app.state.authenticate
        principal = authenticate(request.headers)
        if not self.roles.intersection(principal.roles):
            needed = " or ".join(sorted(self.roles))
            raise PermissionDenied(
                f"{principal.email} may not {request.method} {request.url.path}: "
                f"it needs the role {needed}; ask your platform team"
            )
        return Caller(principal)
