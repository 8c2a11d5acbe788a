"""Who may call an admin route: the caller's credential, their roles, their teams.

Every route declares the roles it admits with `Allow`; a caller holding none of
them is refused with 403 naming the roles that would do.  The admin API takes
the same credentials as the gateway (``Authorization: Bearer`` or
``x-api-key``) and refuses in the same Anthropic-shaped way.  A browser signed
in through the IdP may use its ``gatehouse_session`` cookie instead; a request
that changes something with only the cookie must come from Gatehouse's own
origin (``Sec-Fetch-Site``/``Origin``), so another site cannot make the
browser act for its human (header-based CSRF protection).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from starlette.requests import Request

from gatehouse.errors import AuthenticationFailed, PermissionDenied
from gatehouse.identity.principal import Principal
from gatehouse.identity.roles import ENG_MANAGER, ROLES
from gatehouse.identity.session import SESSION_COOKIE, Sessions


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
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Allow:
    """A FastAPI dependency: the caller, if they hold one of ``roles``."""

    def __init__(self, *roles: str) -> None:
        unknown = set(roles) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles {sorted(unknown)}")
        self.roles = frozenset(roles)

    def __call__(self, request: Request) -> Caller:
        principal = _session_principal(request)
        if principal is None:
            authenticate: Authenticate = request.app.state.authenticate
            principal = authenticate(request.headers)
        if not self.roles.intersection(principal.roles):
            needed = " or ".join(sorted(self.roles))
            raise PermissionDenied(
                f"{principal.email} may not {request.method} {request.url.path}: "
                f"it needs the role {needed}; ask your platform team"
            )
        return Caller(principal)


def _session_principal(request: Request) -> Principal | None:
    """The signed-in human of a browser request that carries no key, else ``None``."""
    headers = request.headers
    if "authorization" in headers or "x-api-key" in headers:
        return None  # a key decides; the cookie of the same browser does not mix in
    sessions: Sessions | None = getattr(request.app.state, "sessions", None)
    cookie = request.cookies.get(SESSION_COOKIE)
    if sessions is None or not cookie:
        return None
    session = sessions.read(cookie)
    if session is None:
        raise AuthenticationFailed(
            f"your Gatehouse sign-in has expired: sign in again at {sessions.public_url}/auth/login"
        )
    if request.method not in _SAFE_METHODS and not sessions.same_origin(headers):
        raise PermissionDenied(
            f"{request.method} {request.url.path} refused: a signed-in browser may change "
            "things only from Gatehouse's own pages (cross-site request)"
        )
    return session.principal()
