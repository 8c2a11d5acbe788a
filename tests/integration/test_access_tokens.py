"""Login credential → POST /auth/token → /v1/messages, and every way back out (in-process)."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx

from gatehouse.identity.credentials import (
    bump_identity_revision,
    issue_credential,
    list_credentials,
    revoke_all_for,
    revoke_credential,
)
from gatehouse.identity.keys import load_secret
from gatehouse.store.identity import delete_user
from gatehouse.store.schema import group_members, groups, users
from tests.conftest import Gateway

MESSAGE = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 32,
    "messages": [{"role": "user", "content": "hello"}],
}


def secret_of(gateway: Gateway) -> bytes:
    return load_secret(gateway.settings.secret_key, gateway.settings.data_dir)


async def login(gateway: Gateway, email: str = "dev@example.com") -> tuple[str, str]:
    return await issue_credential(gateway.db, email, "test", secret_of(gateway))


async def token_for(
    gateway: Gateway, credential: str, repository: str = "git@github.com:acme/pay.git"
) -> httpx.Response:
    return await gateway.client.post(
        "/auth/token",
        json={"repository": repository},
        headers={"authorization": f"Bearer {credential}"},
    )


async def access_token(gateway: Gateway, credential: str, **kw: str) -> str:
    response = await token_for(gateway, credential, **kw)
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def until_refused(gateway: Gateway, token: str, within: float = 1.0) -> httpx.Response:
    """Send requests until one is refused; fail if that takes longer than ``within``."""
    deadline = time.monotonic() + within
    while True:
        response = await gateway.client.post(
            "/v1/messages", json=MESSAGE, headers={"x-api-key": token}
        )
        if response.status_code == 401 or time.monotonic() > deadline:
            return response
        await asyncio.sleep(0.02)


async def test_a_login_buys_a_token_that_works_and_names_the_repository(gateway: Gateway) -> None:
    await gateway.key("dev@example.com", "payments", roles=("developer", "finance"))
    cred_id, credential = await login(gateway)
    response = await token_for(gateway, credential)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["token_type"] == "Bearer"
    assert answer["expires_in"] == 3600
    assert answer["repository"] == "github.com/acme/pay"
    assert answer["team"] == "payments"  # from the developer's key: SCIM never heard of them
    assert response.headers["cache-control"] == "no-store"
    token = answer["access_token"]
    assert token.startswith("gha_")
    sent = await gateway.client.post(
        "/v1/messages",
        json=MESSAGE,
        headers={"authorization": f"Bearer {token}", "x-gatehouse-repo": "github.com/acme/other"},
    )
    assert sent.status_code == 200, sent.text
    [record] = await gateway.usage(1)
    assert (record.developer, record.team, record.key_id) == (
        "dev@example.com",
        "payments",
        f"ghr_{cred_id}",
    )
    # The signed claim outranks what the request itself says.
    assert (record.repository, record.repository_source) == ("github.com/acme/pay", "token")
    # The admin API authenticates tokens too, with the roles they carry.
    me = await gateway.client.get(
        "/admin/api/v1/prices", headers={"authorization": f"Bearer {token}"}
    )
    assert me.status_code == 200, me.text
    [stored] = await list_credentials(gateway.db, "dev@example.com")
    assert stored.last_used_at is not None


async def test_no_git_remote_is_an_empty_claim(gateway: Gateway) -> None:
    _, credential = await login(gateway)
    token = await access_token(gateway, credential, repository="")
    await gateway.client.post(
        "/v1/messages",
        json=MESSAGE,
        headers={"x-api-key": token, "x-gatehouse-repo": "github.com/acme/declared"},
    )
    [record] = await gateway.usage(1)
    assert (record.repository, record.repository_source) == ("github.com/acme/declared", "header")
    assert record.team == ""  # no key, no SCIM: a developer without a team


async def test_a_revoked_login_is_refused_within_the_poll(gateway: Gateway) -> None:
    cred_id, credential = await login(gateway)
    token = await access_token(gateway, credential)
    ok = await gateway.client.post("/v1/messages", json=MESSAGE, headers={"x-api-key": token})
    assert ok.status_code == 200
    assert await revoke_credential(gateway.db, cred_id)
    refused = await until_refused(gateway, token)
    assert refused.status_code == 401
    message = refused.json()["error"]["message"]
    assert "revoked" in message
    assert "gatehouse login" in message
    assert token not in refused.text
    assert refused.headers["x-should-retry"] == "false"
    again = await token_for(gateway, credential)
    assert again.status_code == 401
    assert again.json()["error"] == "invalid_grant"
    assert "gatehouse login" in again.json()["error_description"]


async def test_logout_revokes_the_presented_login(gateway: Gateway) -> None:
    _, credential = await login(gateway)
    token = await access_token(gateway, credential)
    response = await gateway.client.post(
        "/auth/revoke", headers={"authorization": f"Bearer {credential}"}
    )
    assert response.status_code == 200
    assert (await token_for(gateway, credential)).status_code == 401
    assert (await until_refused(gateway, token)).status_code == 401
    # Revoking again (or an unknown login) is not an error (RFC 7009).
    response = await gateway.client.post(
        "/auth/revoke", headers={"authorization": f"Bearer {credential}"}
    )
    assert response.status_code == 200


async def test_revoke_all_for_a_human(gateway: Gateway) -> None:
    _, first = await login(gateway)
    _, second = await login(gateway, "Dev@Example.com")
    assert await revoke_all_for(gateway.db, "DEV@example.com") == 2
    for credential in (first, second):
        assert (await token_for(gateway, credential)).status_code == 401


async def provision(gateway: Gateway, email: str, *group_names: str) -> str:
    user_id = uuid.uuid4().hex
    now = time.time()
    await gateway.db.execute(
        users.insert().values(
            id=user_id,
            user_name=email,
            external_id=None,
            display_name=email,
            active=True,
            resource="{}",
            created_at=now,
            updated_at=now,
            deactivated_at=None,
        ),
        "provision",
    )
    for name in group_names:
        group_id = uuid.uuid4().hex
        await gateway.db.execute(
            groups.insert().values(
                id=group_id, display_name=name, external_id=None, created_at=now, updated_at=now
            ),
            "group",
        )
        await gateway.db.execute(
            group_members.insert().values(group_id=group_id, user_id=user_id), "member"
        )
    await bump_identity_revision(gateway.db)
    return user_id


async def test_a_provisioned_human_gets_team_from_groups_and_is_stopped_when_deactivated(
    gateway: Gateway,
) -> None:
    await gateway.key("sam@example.com", "old-team")
    user_id = await provision(gateway, "sam@example.com", "team-checkout")
    _, credential = await login(gateway, "sam@example.com")
    response = await token_for(gateway, credential)
    assert response.json()["team"] == "checkout"
    token = response.json()["access_token"]
    ok = await gateway.client.post("/v1/messages", json=MESSAGE, headers={"x-api-key": token})
    assert ok.status_code == 200
    # What SCIM does on `active: false`, straight into the table.
    await gateway.db.execute(
        users.update()
        .where(users.c.id == user_id)
        .values(active=False, deactivated_at=time.time()),
        "deactivate",
    )
    await bump_identity_revision(gateway.db)
    refused = await until_refused(gateway, token)
    assert refused.status_code == 401
    assert "deprovisioned" in refused.json()["error"]["message"]
    denied = await token_for(gateway, credential)
    assert denied.status_code == 403
    assert denied.json()["error"] == "access_denied"
    # Deleting them (as SCIM does) does not bring them back.
    await delete_user(gateway.db, user_id)
    await gateway.app.state.services.identity.refresh()  # type: ignore[attr-defined]
    assert (
        await gateway.client.post("/v1/messages", json=MESSAGE, headers={"x-api-key": token})
    ).status_code == 401


async def test_token_endpoint_refusals_are_oauth_shaped(gateway: Gateway) -> None:
    cases = [
        ({}, b"", 401, "invalid_client"),
        ({"authorization": "Basic abc"}, b"", 401, "invalid_client"),
        ({"authorization": "Bearer ghk_abcdefgh_" + "x" * 40}, b"", 401, "invalid_grant"),
        ({"authorization": "Bearer ghr_abcdefabcdef_" + "x" * 40}, b"", 401, "invalid_grant"),
    ]
    _, credential = await login(gateway)
    good = {"authorization": f"Bearer {credential}"}
    cases += [
        (good, b"{not json", 400, "invalid_request"),
        (good, b'{"repository": 3}', 400, "invalid_request"),
        (good, b'{"repository": "' + b"x" * 600 + b'"}', 400, "invalid_request"),
    ]
    for headers, body, status, error in cases:
        response = await gateway.client.post("/auth/token", content=body, headers=headers)
        assert response.status_code == status, (headers, body, response.text)
        assert response.json()["error"] == error
        assert "ghr_" not in response.text
    empty = await gateway.client.post("/auth/token", headers=good)
    assert empty.status_code == 200
    assert (await gateway.client.get("/auth/token")).status_code == 405
