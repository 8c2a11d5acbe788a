"""SCIM 2.0 over the in-process app: the sequences Okta and Entra ID really send."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gatehouse.identity.directory import Directory
from gatehouse.settings import Settings
from gatehouse.store import identity as identity_store
from tests.conftest import Gateway, running_gateway

TOKEN = "scim-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MESSAGE = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "hello"}],
}


@pytest.fixture
async def scim(settings: Settings) -> AsyncIterator[Gateway]:
    configured = dataclasses.replace(
        settings, scim_token=TOKEN, role_groups="platform-admin=gh-platform,finance=gh-finance"
    )
    async with running_gateway(configured) as gw:
        yield gw


def okta_user(email: str) -> dict[str, Any]:
    """What Okta's SCIM 2.0 app POSTs for a new assignment."""
    given = email.partition("@")[0]
    return {
        "schemas": [USER_SCHEMA],
        "userName": email,
        "name": {"givenName": given.title(), "familyName": "Example"},
        "emails": [{"primary": True, "value": email, "type": "work"}],
        "displayName": f"{given.title()} Example",
        "locale": "en-US",
        "externalId": f"00u{given}",
        "groups": [],
        "password": "okta-generated",
        "active": True,
    }


async def send(gw: Gateway, key: str) -> Any:
    return await gw.client.post("/v1/messages", json=MESSAGE, headers={"x-api-key": key})


async def settle(gw: Gateway) -> None:
    """What the Redis announcement does on a replica: reload the snapshots now."""
    services = gw.app.state.services  # type: ignore[attr-defined]
    await services.proxy.keys.refresh()
    if services.identity is not None:
        await services.identity.refresh()


def assert_scim_error(response: Any, status: int, scim_type: str | None = None) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/scim+json")
    body = response.json()
    assert body["schemas"] == [ERROR_SCHEMA]
    assert body["status"] == str(status)
    assert body["detail"]
    if scim_type is not None:
        assert body["scimType"] == scim_type


async def test_okta_create_find_deactivate_revokes_the_key(scim: Gateway) -> None:
    key = await scim.key("ada@example.com", team="")
    assert (await send(scim, key)).status_code == 200
    # Okta first looks the user up, then creates them.
    found = await scim.client.get(
        "/scim/v2/Users", params={"filter": 'userName eq "ada@example.com"'}, headers=AUTH
    )
    assert found.json()["totalResults"] == 0
    created = await scim.client.post(
        "/scim/v2/Users", json=okta_user("ada@example.com"), headers=AUTH
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert created.headers["location"] == user["meta"]["location"]
    assert user["meta"]["resourceType"] == "User"
    assert user["locale"] == "en-US" and "password" not in user
    found = await scim.client.get(
        "/scim/v2/Users",
        params={"filter": 'userName eq "ADA@example.com"', "startIndex": "1", "count": "2"},
        headers=AUTH,
    )
    listing = found.json()
    assert listing["totalResults"] == 1 and listing["Resources"][0]["id"] == user["id"]
    assert listing["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    # Okta's deactivation.
    deactivated = await scim.client.patch(
        f"/scim/v2/Users/{user['id']}",
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "value": {"active": False}}],
        },
        headers=AUTH,
    )
    assert deactivated.status_code == 200, deactivated.text
    assert deactivated.json()["active"] is False
    await settle(scim)
    refused = await send(scim, key)
    assert refused.status_code == 401
    message = refused.json()["error"]["message"]
    assert "ada@example.com was deprovisioned by your identity provider" in message
    assert "ask your IT team" in message
    events = await scim.db.query_events(kind="user_deprovisioned")
    assert [e.developer for e in events] == ["ada@example.com"]
    # Reactivation lets them sign in again, but the old key stays revoked.
    await scim.client.patch(
        f"/scim/v2/Users/{user['id']}",
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "replace", "value": {"active": True}}],
        },
        headers=AUTH,
    )
    await settle(scim)
    assert (await send(scim, key)).status_code == 401
    assert (await scim.db.query_events(kind="user_reactivated"))[0].developer == "ada@example.com"


async def test_entra_create_patch_string_false_then_delete(scim: Gateway) -> None:
    key = await scim.key("grace@example.com")
    created = await scim.client.post(
        "/scim/v2/Users",
        json={
            "schemas": [USER_SCHEMA, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "externalId": "2f1c0f9e-entra",
            "userName": "grace@example.com",
            "active": True,
            "displayName": "Grace Hopper",
            "emails": [{"primary": True, "type": "work", "value": "grace@example.com"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Navy"},
        },
        headers=AUTH,
    )
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    # Entra looks users up by externalId too.
    by_external = await scim.client.get(
        "/scim/v2/Users", params={"filter": 'externalId eq "2f1c0f9e-entra"'}, headers=AUTH
    )
    assert by_external.json()["Resources"][0]["id"] == user_id
    patched = await scim.client.patch(
        f"/scim/v2/Users/{user_id}",
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Replace", "path": "displayName", "value": "Rear Admiral Hopper"},
            ],
        },
        headers=AUTH,
    )
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["active"] is False and body["displayName"] == "Rear Admiral Hopper"
    assert body["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"] == {
        "department": "Navy"
    }
    await settle(scim)
    assert (await send(scim, key)).status_code == 401
    deleted = await scim.client.delete(f"/scim/v2/Users/{user_id}", headers=AUTH)
    assert deleted.status_code == 204
    assert_scim_error(await scim.client.get(f"/scim/v2/Users/{user_id}", headers=AUTH), 404)
    await settle(scim)
    refused = await send(scim, key)
    assert refused.status_code == 401
    assert "deprovisioned" in refused.json()["error"]["message"]


async def test_delete_revokes_keys_and_service_keys(scim: Gateway) -> None:
    key = await scim.key("linus@example.com")
    service_key = await scim.key("linus@example.com", service="nightly-ci")
    created = await scim.client.post(
        "/scim/v2/Users", json=okta_user("linus@example.com"), headers=AUTH
    )
    assert (await send(scim, service_key)).status_code == 200
    records = await scim.usage(1)
    assert records[0].developer == "linus@example.com"  # usage is the owner's
    assert (
        await scim.client.delete(f"/scim/v2/Users/{created.json()['id']}", headers=AUTH)
    ).status_code == 204
    await settle(scim)
    for presented in (key, service_key):
        refused = await send(scim, presented)
        assert refused.status_code == 401
    message = (await send(scim, service_key)).json()["error"]["message"]
    assert "service key" in message and "nightly-ci" in message and "its owner" in message
    event = (await scim.db.query_events(kind="user_deleted"))[0]
    assert event.detail["services"] == ["nightly-ci"]
    assert len(event.detail["key_ids"]) == 2


async def test_groups_drive_team_and_roles(scim: Gateway) -> None:
    ada = (
        await scim.client.post("/scim/v2/Users", json=okta_user("ada@example.com"), headers=AUTH)
    ).json()
    bob = (
        await scim.client.post("/scim/v2/Users", json=okta_user("bob@example.com"), headers=AUTH)
    ).json()
    team = await scim.client.post(
        "/scim/v2/Groups",
        json={"schemas": [GROUP_SCHEMA], "displayName": "team-payments", "members": []},
        headers=AUTH,
    )
    assert team.status_code == 201, team.text
    group_id = team.json()["id"]
    admins = await scim.client.post(
        "/scim/v2/Groups",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "gh-platform",
            "members": [{"value": ada["id"]}],
        },
        headers=AUTH,
    )
    assert admins.status_code == 201
    added = await scim.client.patch(
        f"/scim/v2/Groups/{group_id}",
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [
                {
                    "op": "add",
                    "path": "members",
                    "value": [{"value": ada["id"]}, {"value": bob["id"]}],
                }
            ],
        },
        headers=AUTH,
    )
    assert added.status_code == 200, added.text
    assert {m["value"] for m in added.json()["members"]} == {ada["id"], bob["id"]}
    directory = Directory.from_settings(scim.settings)
    assert await identity_store.lookup(scim.db, "ADA@example.com", directory) == (
        "payments",
        ("platform-admin", "developer"),
        True,
    )
    assert await identity_store.lookup(scim.db, "bob@example.com", directory) == (
        "payments",
        ("developer",),
        True,
    )
    removed = await scim.client.patch(
        f"/scim/v2/Groups/{group_id}",
        json={
            "schemas": [PATCH_SCHEMA],
            "Operations": [{"op": "remove", "path": f'members[value eq "{bob["id"]}"]'}],
        },
        headers=AUTH,
    )
    assert [m["value"] for m in removed.json()["members"]] == [ada["id"]]
    assert (await identity_store.lookup(scim.db, "bob@example.com", directory))[0] == ""  # type: ignore[index]
    listed = await scim.client.get(
        "/scim/v2/Groups",
        params={"filter": 'displayName eq "team-payments"', "excludedAttributes": "members"},
        headers=AUTH,
    )
    assert listed.json()["totalResults"] == 1
    assert "members" not in listed.json()["Resources"][0]
    renamed = await scim.client.put(
        f"/scim/v2/Groups/{group_id}",
        json={
            "schemas": [GROUP_SCHEMA],
            "displayName": "team-search",
            "members": [{"value": bob["id"]}],
        },
        headers=AUTH,
    )
    assert renamed.status_code == 200 and renamed.json()["displayName"] == "team-search"
    assert (
        await scim.client.delete(f"/scim/v2/Groups/{group_id}", headers=AUTH)
    ).status_code == 204
    assert await identity_store.lookup(scim.db, "nobody@example.com", directory) is None


async def test_bad_input_gets_scim_errors(scim: Gateway) -> None:
    post = scim.client.post
    assert (
        await post("/scim/v2/Users", json=okta_user("ada@example.com"), headers=AUTH)
    ).status_code == 201
    assert_scim_error(
        await post("/scim/v2/Users", json=okta_user("ADA@example.com"), headers=AUTH),
        409,
        "uniqueness",
    )
    assert_scim_error(
        await post("/scim/v2/Users", content=b"{not json", headers=AUTH), 400, "invalidSyntax"
    )
    assert_scim_error(
        await post("/scim/v2/Users", json={"schemas": [USER_SCHEMA]}, headers=AUTH),
        400,
        "invalidValue",
    )
    assert_scim_error(
        await scim.client.get("/scim/v2/Users", params={"filter": 'userName sw "a"'}, headers=AUTH),
        400,
        "invalidFilter",
    )
    assert_scim_error(
        await post(
            "/scim/v2/Groups",
            json={"displayName": "team-x", "members": [{"value": "no-such-user"}]},
            headers=AUTH,
        ),
        400,
        "invalidValue",
    )
    assert_scim_error(
        await scim.client.patch(
            "/scim/v2/Users/missing",
            json={
                "schemas": [PATCH_SCHEMA],
                "Operations": [{"op": "replace", "value": {"active": False}}],
            },
            headers=AUTH,
        ),
        404,
    )
    assert_scim_error(await scim.client.get("/scim/v2/Nope", headers=AUTH), 404)


async def test_discovery_documents(scim: Gateway) -> None:
    config = await scim.client.get("/scim/v2/ServiceProviderConfig", headers=AUTH)
    assert config.status_code == 200
    assert config.json()["patch"] == {"supported": True}
    types = (await scim.client.get("/scim/v2/ResourceTypes", headers=AUTH)).json()
    assert {t["endpoint"] for t in types["Resources"]} == {"/Users", "/Groups"}
    schemas = (await scim.client.get("/scim/v2/Schemas", headers=AUTH)).json()
    assert {s["id"] for s in schemas["Resources"]} == {USER_SCHEMA, GROUP_SCHEMA}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong"},
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": "Bearer "},
    ],
)
async def test_auth_failures_are_401(scim: Gateway, headers: dict[str, str]) -> None:
    response = await scim.client.get("/scim/v2/Users", headers=headers)
    assert_scim_error(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_scim_is_off_without_a_token(gateway: Gateway) -> None:
    response = await gateway.client.get("/scim/v2/Users", headers=AUTH)
    assert_scim_error(response, 404)
    assert "GATEHOUSE_SCIM_TOKEN" in response.json()["detail"]
