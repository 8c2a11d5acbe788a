"""Who may do what to the policy: every policy action × the five roles, through the admin API.

The route matrix (test_admin_api.py) checks which roles a route admits; this one
checks the actions themselves, including the cases a role alone does not decide:
a repository's owner group, and platform throwing a kill switch on security's word.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gatehouse.identity.principal import Principal
from gatehouse.identity.roles import ROLES
from gatehouse.policy import service
from gatehouse.store import identity as identity_store
from gatehouse.store.policy import PolicyStore
from gatehouse.store.repo_requests import RepoRequest, RepoRequestStore
from gatehouse.store.schema import repo_requests
from tests.conftest import Gateway

REPO = "github.com/acme/payments"
SEC = Principal("sec@example.com", roles=("security",))
PLATFORM = frozenset({"platform-admin"})
SECURITY = frozenset({"security"})
Prepare = Callable[[Gateway], Awaitable[None]]


async def nothing(gateway: Gateway) -> None:
    return None


async def clear_requests(gateway: Gateway) -> None:
    await gateway.db.execute(repo_requests.delete(), "clear requests")


async def pending_request(gateway: Gateway) -> None:
    await RepoRequestStore(gateway.db).add(RepoRequest(REPO, "dev@example.com", "on call"))


async def thrown_switch(gateway: Gateway) -> None:
    await service.throw_killswitch(
        PolicyStore(gateway.db), SEC, scope="team:payments", reason="drill"
    )


async def approved_model(gateway: Gateway) -> None:
    await service.approve_model(PolicyStore(gateway.db), SEC, model="claude-x-*", reason="ok")


@dataclass(frozen=True)
class Action:
    method: str
    url: str
    allowed: frozenset[str]
    request: dict[str, Any] = field(default_factory=dict)
    prepare: Prepare = nothing


ACTIONS: dict[str, Action] = {
    "request repository": Action(
        "POST",
        "/v1/repos/requests",
        frozenset(ROLES),
        {"json": {"repository": REPO, "reason": "on call"}},
        clear_requests,
    ),
    "approve repository": Action(
        "POST",
        f"/v1/repos/requests/{REPO}/approve",
        SECURITY,
        {"json": {"classification": "internal"}},
        pending_request,
    ),
    "deny repository": Action(
        "POST",
        f"/v1/repos/requests/{REPO}/deny",
        SECURITY,
        {"json": {"reason": "use the mirror"}},
        pending_request,
    ),
    "apply policy": Action(
        "PUT", "/v1/policy", SECURITY, {"json": {"document": "mode: observe\n", "reason": "r"}}
    ),
    "throw kill switch": Action(
        "POST",
        "/v1/killswitches",
        SECURITY,
        {"json": {"scope": "global", "reason": "incident 7"}},
    ),
    "lift kill switch": Action(
        "DELETE",
        "/v1/killswitches/team:payments",
        SECURITY,
        {"params": {"reason": "resolved"}},
        thrown_switch,
    ),
    "propose model": Action(
        "POST",
        "/v1/models/proposals",
        PLATFORM | SECURITY,
        {"json": {"model": "claude-x-*", "reason": "new release"}},
    ),
    "approve model": Action(
        "POST",
        "/v1/models/approve",
        SECURITY,
        {"json": {"model": "claude-x-*", "reason": "vendor review"}},
    ),
    "revoke model": Action(
        "POST",
        "/v1/models/revoke",
        SECURITY,
        {"json": {"model": "claude-x-*", "reason": "incident"}},
        approved_model,
    ),
}


async def _key(gateway: Gateway, role: str) -> dict[str, str]:
    return {"x-api-key": await gateway.key(email=f"{role}@example.com", roles=(role,))}


@pytest.mark.parametrize("name", list(ACTIONS))
async def test_each_policy_action_is_open_to_exactly_its_roles(gateway: Gateway, name: str) -> None:
    action = ACTIONS[name]
    for role in ROLES:
        await action.prepare(gateway)
        response = await gateway.client.request(
            action.method,
            "/admin/api" + action.url,
            headers=await _key(gateway, role),
            **action.request,
        )
        if role in action.allowed:
            assert response.status_code == 200, (name, role, response.text)
        else:
            assert response.status_code == 403, (name, role, response.text)
            assert response.json()["error"]["type"] == "permission_error"


async def _owner_group(gateway: Gateway, email: str) -> None:
    await PolicyStore(gateway.db).change(
        lambda p: p.replace(owners={"github.com/acme": "acme-owners"}),
        author=SEC.email,
        reason="acme owns acme",
        source="api",
    )
    await identity_store.create_user(gateway.db, identity_store.User(id="u1", user_name=email))
    await identity_store.create_group(
        gateway.db, identity_store.Group(id="g1", display_name="acme-owners", members=("u1",))
    )


@pytest.mark.parametrize("verb", ["approve", "deny"])
async def test_an_owner_group_member_of_any_role_decides_their_repositories(
    gateway: Gateway, verb: str
) -> None:
    await _owner_group(gateway, "finance@example.com")
    action = ACTIONS[f"{verb} repository"]
    for role in ROLES:
        await action.prepare(gateway)
        response = await gateway.client.request(
            action.method,
            "/admin/api" + action.url,
            headers=await _key(gateway, role),
            **action.request,
        )
        expected = 200 if role in ("security", "finance") else 403
        assert response.status_code == expected, (role, response.text)


async def test_platform_throws_a_kill_switch_only_on_a_security_persons_word(
    gateway: Gateway,
) -> None:
    platform = await _key(gateway, "platform-admin")
    await _key(gateway, "security")  # security@example.com holds the security role
    url = "/admin/api/v1/killswitches"
    terms = {"scope": "repository:github.com/acme/pay", "reason": "leak"}
    alone = await gateway.client.post(url, json=terms, headers=platform)
    assert alone.status_code == 403
    assert "on security's instruction" in alone.json()["error"]["message"]
    not_security = await gateway.client.post(
        url, json={**terms, "on_behalf_of": "finance@example.com"}, headers=platform
    )
    assert not_security.status_code == 403
    assert "security role" in not_security.json()["error"]["message"]
    instructed = await gateway.client.post(
        url, json={**terms, "on_behalf_of": "security@example.com"}, headers=platform
    )
    assert instructed.status_code == 200, instructed.text
    assert instructed.json()["on_behalf_of"] == "security@example.com"
    assert instructed.json()["thrown_by"] == "platform-admin@example.com"
    [latest, *_] = await PolicyStore(gateway.db).history()
    assert latest.author == "platform-admin@example.com on behalf of security@example.com"
    lift = await gateway.client.delete(
        url + "/repository:github.com/acme/pay", params={"reason": "fixed"}, headers=platform
    )
    assert lift.status_code == 403
