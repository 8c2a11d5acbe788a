"""The self-serve repository flow through the admin API: request, decide, see the outcome."""

from __future__ import annotations

from gatehouse.store import identity as identity_store
from gatehouse.store.policy import PolicyStore
from tests.conftest import Gateway

REQUESTS = "/admin/api/v1/repos/requests"


async def _headers(gateway: Gateway, email: str, *roles: str) -> dict[str, str]:
    key = await gateway.key(email=email, team="payments", roles=roles or ("developer",))
    return {"x-api-key": key}


async def test_request_approve_and_the_developer_sees_it(gateway: Gateway) -> None:
    ada = await _headers(gateway, "ada@example.com")
    security = await _headers(gateway, "sec@example.com", "security")
    made = await gateway.client.post(
        REQUESTS,
        json={"repository": "https://github.com/Acme/Payments.git", "reason": "on call"},
        headers=ada,
    )
    assert made.status_code == 200, made.text
    assert made.json()["repository"] == "github.com/acme/payments"
    assert made.json()["status"] == "pending"
    again = await gateway.client.post(
        REQUESTS, json={"repository": "github.com/acme/payments", "reason": "x"}, headers=ada
    )
    assert again.status_code == 409, again.text
    assert "already requested by ada@example.com" in again.json()["error"]["message"]

    ada_refused = await gateway.client.post(
        f"{REQUESTS}/github.com/acme/payments/approve",
        json={"classification": "internal"},
        headers=ada,
    )
    assert ada_refused.status_code == 403
    assert "only the security role" in ada_refused.json()["error"]["message"]

    approved = await gateway.client.post(
        f"{REQUESTS}/{made.json()['id']}/approve",
        json={
            "classification": "confidential",
            "paths": [{"glob": "secrets/**", "action": "block", "name": "secrets"}],
            "reason": "payments on-call needs it",
        },
        headers=security,
    )
    assert approved.status_code == 200, approved.text
    assert approved.json()["decided_by"] == "sec@example.com"

    _, policy = await PolicyStore(gateway.db).current()
    rule = policy.rule_for("github.com/acme/payments")
    assert rule is not None and rule.classification == "confidential"
    assert [(p.glob, p.action) for p in rule.paths] == [("secrets/**", "block")]
    [latest, *_] = await PolicyStore(gateway.db).history()
    assert (latest.author, latest.source) == ("sec@example.com", "api")
    assert "payments on-call needs it" in latest.reason

    mine = await gateway.client.get(REQUESTS, headers=ada)
    assert [(r["status"], r["classification"]) for r in mine.json()] == [
        ("approved", "confidential")
    ]
    [event] = await gateway.db.query_events(kind="repo_access_approved")
    assert event.detail["decided_by"] == "sec@example.com"
    assert event.developer == "ada@example.com"


async def test_deny_is_seen_with_its_reason_and_others_see_only_their_own(
    gateway: Gateway,
) -> None:
    ada = await _headers(gateway, "ada@example.com")
    bob = await _headers(gateway, "bob@example.com")
    security = await _headers(gateway, "sec@example.com", "security")
    admin = await _headers(gateway, "ops@example.com", "platform-admin")
    for who, repo in ((ada, "github.com/acme/a"), (bob, "github.com/acme/b")):
        response = await gateway.client.post(
            REQUESTS, json={"repository": repo, "reason": "work"}, headers=who
        )
        assert response.status_code == 200, response.text
    denied = await gateway.client.post(
        f"{REQUESTS}/github.com/acme/a/deny", json={"reason": "use the mirror"}, headers=security
    )
    assert denied.status_code == 200, denied.text
    seen = (await gateway.client.get(REQUESTS, headers=ada)).json()
    assert [(r["repository"], r["status"], r["decision_reason"]) for r in seen] == [
        ("github.com/acme/a", "denied", "use the mirror")
    ]
    # A developer asking for someone else's requests still sees only their own.
    theirs = await gateway.client.get(
        REQUESTS, params={"developer": "ada@example.com"}, headers=bob
    )
    assert [r["requested_by"] for r in theirs.json()] == ["bob@example.com"]
    pending = await gateway.client.get(REQUESTS, params={"status": "pending"}, headers=admin)
    assert [r["repository"] for r in pending.json()] == ["github.com/acme/b"]
    twice = await gateway.client.post(
        f"{REQUESTS}/github.com/acme/a/deny", json={"reason": "again"}, headers=security
    )
    assert twice.status_code == 404


async def test_an_owner_group_decides_for_its_organisation_only(gateway: Gateway) -> None:
    await PolicyStore(gateway.db).change(
        lambda p: p.replace(owners={"github.com/acme": "acme-data-owners"}),
        author="sec@example.com",
        reason="acme owns its classification",
        source="api",
    )
    await identity_store.create_user(
        gateway.db, identity_store.User(id="u-owner", user_name="owner@example.com")
    )
    await identity_store.create_group(
        gateway.db,
        identity_store.Group(id="g-owners", display_name="acme-data-owners", members=("u-owner",)),
    )
    ada = await _headers(gateway, "ada@example.com")
    owner = await _headers(gateway, "owner@example.com")
    for repo in ("github.com/acme/search", "github.com/other/tool"):
        await gateway.client.post(REQUESTS, json={"repository": repo, "reason": "w"}, headers=ada)
    mine = await gateway.client.post(
        f"{REQUESTS}/github.com/acme/search/approve",
        json={"classification": "internal"},
        headers=owner,
    )
    assert mine.status_code == 200, mine.text
    not_mine = await gateway.client.post(
        f"{REQUESTS}/github.com/other/tool/approve",
        json={"classification": "internal"},
        headers=owner,
    )
    assert not_mine.status_code == 403
    pending = await gateway.client.get(REQUESTS, params={"status": "pending"}, headers=ada)
    [left] = pending.json()
    refused = await gateway.client.delete(f"{REQUESTS}/{left['id']}", headers=owner)
    assert refused.status_code == 403
    withdrawn = await gateway.client.delete(f"{REQUESTS}/{left['id']}", headers=ada)
    assert withdrawn.json()["status"] == "withdrawn"


async def test_bad_requests_are_400s_that_say_what_is_wrong(gateway: Gateway) -> None:
    ada = await _headers(gateway, "ada@example.com")
    security = await _headers(gateway, "sec@example.com", "security")
    bad = await gateway.client.post(
        REQUESTS, json={"repository": "payments", "reason": "x"}, headers=ada
    )
    assert bad.status_code == 400 and "host/owner/name" in bad.json()["error"]["message"]
    await gateway.client.post(
        REQUESTS, json={"repository": "github.com/acme/x", "reason": "x"}, headers=ada
    )
    for terms, fragment in (
        ({"classification": "secret"}, "classification"),
        (
            {"classification": "internal", "paths": [{"glob": "a/**", "action": "hide"}]},
            "redact or block",
        ),
    ):
        response = await gateway.client.post(
            f"{REQUESTS}/github.com/acme/x/approve", json=terms, headers=security
        )
        assert response.status_code == 400, response.text
        assert fragment in response.json()["error"]["message"]
