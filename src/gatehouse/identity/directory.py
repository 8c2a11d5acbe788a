"""Which team and roles a human has, from the names of their IdP groups.

Pure: the same mapping serves SCIM (groups pushed by the IdP), OIDC sign-in (the
ID token's groups claim) and key minting.  Two settings drive it:

- ``role_groups``: ``platform-admin=gh-platform,security=gh-security,…``.  A role
  may be named several times (several groups grant it) and a group may grant
  several roles.  An unknown role stops start-up (`SettingsError`).
- ``team_group_prefix``: a group named ``<prefix><team>`` makes its members
  members of ``<team>``.  A human in several such groups gets the first team in
  sorted order, so every replica and every sign-in agrees; an empty prefix turns
  team mapping off.

Group names are compared case-insensitively (IdPs differ in how they case
them); the team keeps the case the IdP gave it.  Everyone is a ``developer``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from gatehouse.identity.roles import DEVELOPER, ROLES
from gatehouse.settings import Settings, SettingsError


def parse_role_groups(text: str) -> dict[str, tuple[str, ...]]:
    """``role=group,…`` → {group (case-folded): roles it grants}; `SettingsError` if malformed."""
    mapping: dict[str, tuple[str, ...]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        role, sep, group = (s.strip() for s in item.partition("="))
        if not sep or not role or not group:
            raise SettingsError(
                f"setting 'role_groups': {item!r} is not ROLE=GROUP "
                "(for example platform-admin=gh-platform)"
            )
        if role not in ROLES:
            raise SettingsError(
                f"setting 'role_groups': unknown role {role!r}; choose from {', '.join(ROLES)}"
            )
        key = group.casefold()
        if role not in mapping.get(key, ()):
            mapping[key] = (*mapping.get(key, ()), role)
    return mapping


def roles_for(groups: Iterable[str], role_groups: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The roles ``groups`` grant under ``role_groups`` (from `parse_role_groups`).

    In the order `ROLES` declares them, ``developer`` always included (last).
    """
    granted = {DEVELOPER}
    for group in groups:
        granted.update(role_groups.get(group.casefold(), ()))
    return tuple(role for role in ROLES if role in granted)


def team_for(groups: Iterable[str], prefix: str) -> str:
    """The team a ``<prefix><team>`` group names; the first in sorted order; ``""`` if none."""
    if not prefix:
        return ""
    folded = prefix.casefold()
    teams = sorted(
        team
        for group in groups
        if group.casefold().startswith(folded) and (team := group[len(prefix) :].strip())
    )
    return teams[0] if teams else ""


@dataclass(frozen=True, slots=True)
class Directory:
    """The role map and team prefix, read once from settings."""

    role_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    team_prefix: str = "team-"

    @classmethod
    def parse(cls, role_groups: str, team_prefix: str = "team-") -> Directory:
        """From the two settings' text; `SettingsError` on an unknown role or a bad item."""
        return cls(role_groups=parse_role_groups(role_groups), team_prefix=team_prefix.strip())

    @classmethod
    def from_settings(cls, settings: Settings) -> Directory:
        return cls.parse(settings.role_groups, settings.team_group_prefix)

    def roles_for(self, groups: Iterable[str]) -> tuple[str, ...]:
        """Roles for a human in ``groups``; always includes ``developer``."""
        return roles_for(groups, self.role_groups)

    def team_for(self, groups: Iterable[str]) -> str:
        """The team for a human in ``groups`` (first in sorted order), ``""`` if none."""
        return team_for(groups, self.team_prefix)
