"""identity/directory.py: IdP group names → roles and team."""

import pytest

from gatehouse.identity.directory import Directory, parse_role_groups, roles_for, team_for
from gatehouse.settings import Settings, SettingsError


def test_role_groups_parse_into_group_to_roles() -> None:
    mapping = parse_role_groups(
        " platform-admin=gh-platform, security=GH-Security,finance=gh-platform,,"
    )
    assert mapping == {"gh-platform": ("platform-admin", "finance"), "gh-security": ("security",)}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("owner=gh-owners", "unknown role 'owner'"),
        ("platform-admin", "is not ROLE=GROUP"),
        ("platform-admin=", "is not ROLE=GROUP"),
        ("=gh-platform", "is not ROLE=GROUP"),
    ],
)
def test_malformed_role_groups_stop_start_up(text: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Directory.parse(text)


def test_everyone_is_a_developer_and_roles_come_in_declared_order() -> None:
    mapping = parse_role_groups("security=gh-sec,platform-admin=gh-platform,eng-manager=gh-mgr")
    assert roles_for([], mapping) == ("developer",)
    assert roles_for(["other"], mapping) == ("developer",)
    assert roles_for(["gh-mgr", "GH-PLATFORM"], mapping) == (
        "platform-admin",
        "eng-manager",
        "developer",
    )


def test_team_is_the_first_prefixed_group_in_sorted_order() -> None:
    assert team_for(["team-payments", "gh-x", "team-core"], "team-") == "core"
    assert team_for(["Team-Payments"], "team-") == "Payments"
    assert team_for(["gh-x", "team-"], "team-") == ""
    assert team_for(["team-core"], "") == ""


def test_directory_from_settings() -> None:
    directory = Directory.from_settings(
        Settings(role_groups="finance=gh-fin", team_group_prefix="eng-")
    )
    assert directory.roles_for(["gh-fin", "eng-search"]) == ("finance", "developer")
    assert directory.team_for(["gh-fin", "eng-search"]) == "search"
    assert Directory().team_for(["team-a"]) == "a"
