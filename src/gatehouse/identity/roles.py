"""The roles a human can hold, and what each is for.

Roles come with the credential (a key names them; the IdP's groups will map to
them).  What a role may do is decided where the action lives — each admin API
route names the roles it admits — so this module only names them.
"""

from __future__ import annotations

PLATFORM_ADMIN = "platform-admin"
SECURITY = "security"
FINANCE = "finance"
ENG_MANAGER = "eng-manager"
DEVELOPER = "developer"

ROLES: dict[str, str] = {
    PLATFORM_ADMIN: "operates Gatehouse: keys, budgets, settings",
    SECURITY: "holds the vetoes: repositories, vendors and models, the kill switch",
    FINANCE: "reads the ledger and exports; sets budgets",
    ENG_MANAGER: "owns their team's budget: reads its spend, grants exceptions",
    DEVELOPER: "sends requests through the gateway",
}


def parse_roles(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validated, de-duplicated roles in the order given; ``developer`` when none."""
    unknown = [name for name in names if name not in ROLES]
    if unknown:
        raise ValueError(f"unknown role {unknown[0]!r}: choose from {', '.join(ROLES)}")
    return tuple(dict.fromkeys(names)) or (DEVELOPER,)
