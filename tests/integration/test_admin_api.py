"""The admin API: every route × every role, errors in the gateway's shape, OpenAPI served."""

from __future__ import annotations

from typing import Any

import pytest

from gatehouse.audit.capture import AuditCapture
from gatehouse.audit.store import write_audit
from gatehouse.identity.principal import Principal
from gatehouse.identity.roles import ROLES
from gatehouse.ledger import budgeting
from gatehouse.ledger.usage import UsageRecord
from gatehouse.policy import service
from gatehouse.store.policy import PolicyStore
from gatehouse.store.repo_requests import RepoRequest, RepoRequestStore
from gatehouse.store.schema import audit_holds, repo_requests
from tests.conftest import Gateway

ALL = frozenset(ROLES)
MONEY = frozenset({"finance", "platform-admin"})
MANAGERS = MONEY | {"eng-manager"}
OPERATORS = frozenset({"platform-admin", "security", "finance"})
VETO_READERS = frozenset({"security", "platform-admin"})
SECURITY = frozenset({"security"})
REPO = "github.com/acme/payments"

# (method, path as in the OpenAPI document) → the roles it admits, and a request that
# is valid for an admitted role.  Every route the API serves must be listed here.
MATRIX: dict[tuple[str, str], tuple[frozenset[str], dict[str, Any]]] = {
    ("GET", "/v1/whoami"): (ALL, {}),
    ("GET", "/v1/events"): (OPERATORS, {}),
    ("GET", "/v1/prices"): (ALL, {}),
    ("GET", "/v1/chargeback/report"): (MANAGERS, {"params": {"month": "2026-11"}}),
    ("GET", "/v1/chargeback/export"): (MONEY, {"params": {"month": "2026-11"}}),
    ("GET", "/v1/budgets"): (MANAGERS, {}),
    ("PUT", "/v1/budgets/{scope}/{name}"): (MONEY, {"json": {"monthly_usd": "100"}}),
    ("DELETE", "/v1/budgets/{scope}/{name}"): (MONEY, {}),
    ("POST", "/v1/budgets/{scope}/{name}/exceptions"): (
        MANAGERS,
        {"json": {"amount_usd": "5", "until": "2099-01-01", "reason": "launch week"}},
    ),
    ("POST", "/v1/repos/requests"): (ALL, {"json": {"repository": REPO, "reason": "on call"}}),
    ("GET", "/v1/repos/requests"): (ALL, {}),
    # Decided by security or the repository's owner group (none is set here), so a
    # role the route admits may still be refused by the service: see test_policy_actions.py.
    ("POST", "/v1/repos/requests/{target}/approve"): (
        SECURITY,
        {"json": {"classification": "internal", "reason": "payments repo"}},
    ),
    ("POST", "/v1/repos/requests/{target}/deny"): (SECURITY, {"json": {"reason": "no"}}),
    ("DELETE", "/v1/repos/requests/{request_id}"): (ALL, {}),
    ("GET", "/v1/policy"): (VETO_READERS, {}),
    ("GET", "/v1/policy/history"): (VETO_READERS, {}),
    ("PUT", "/v1/policy"): (
        SECURITY,
        {"json": {"document": "mode: enforce\n", "reason": "reset"}},
    ),
    ("GET", "/v1/killswitches"): (VETO_READERS, {}),
    ("POST", "/v1/killswitches"): (
        VETO_READERS,
        {
            "json": {
                "scope": "team:payments",
                "reason": "incident 42",
                "on_behalf_of": "security@example.com",
            }
        },
    ),
    ("DELETE", "/v1/killswitches/{scope}"): (SECURITY, {"params": {"reason": "resolved"}}),
    ("GET", "/v1/models"): (ALL, {}),
    ("POST", "/v1/models/proposals"): (
        VETO_READERS,
        {"json": {"model": "claude-next-*", "reason": "new release"}},
    ),
    ("POST", "/v1/models/approve"): (
        SECURITY,
        {"json": {"model": "claude-next-*", "reason": "vendor review done"}},
    ),
    ("POST", "/v1/models/revoke"): (
        SECURITY,
        {"json": {"model": "claude-next-*", "reason": "withdrawn"}},
    ),
    # Audit content is security's; integrity and holds reveal none, so platform admins see them.
    ("GET", "/v1/audit/search"): (SECURITY, {"params": {"q": "matrix", "since": "7d"}}),
    ("GET", "/v1/audit/sessions/{session}/transcript"): (SECURITY, {"params": {"format": "md"}}),
    ("GET", "/v1/audit/investigate/{subject}"): (SECURITY, {}),
    ("GET", "/v1/audit/verify"): (VETO_READERS, {}),
    ("GET", "/v1/audit/holds"): (VETO_READERS, {}),
    ("POST", "/v1/audit/holds"): (
        SECURITY,
        {"json": {"scope": "repository", "value": REPO, "reason": "matter 7"}},
    ),
    ("DELETE", "/v1/audit/holds/{hold_id}"): (SECURITY, {"params": {"reason": "closed"}}),
}
# Routes whose refusals come from the policy service (who owns the repository), not
# from the route's roles: their message names the caller but not the route.
DECIDED_BY_OWNER = {
    ("POST", "/v1/repos/requests/{target}/approve"),
    ("POST", "/v1/repos/requests/{target}/deny"),
}
MATRIX_REQUEST_ID = "matrixrequest01"
MATRIX_SESSION = "matrix-session"
MATRIX_AUDITED = "gh_matrix_0001"
MATRIX_HOLD_ID = "matrixhold01"


def _concrete(path: str) -> str:
    # The keys' team: a manager of payments may raise payments' budget.
    if path.startswith("/v1/killswitches/"):
        return path.replace("{scope}", "global")
    return (
        path.replace("{scope}", "team")
        .replace("{name}", "payments")
        .replace("{target}", REPO)
        .replace("{request_id}", MATRIX_REQUEST_ID)
        .replace("{session}", MATRIX_SESSION)
        .replace("{subject}", MATRIX_AUDITED)
        .replace("{hold_id}", MATRIX_HOLD_ID)
    )


async def _prepare(gateway: Gateway, method: str, path: str, role: str) -> None:
    """What an admitted call needs to exist: a budget to change, a request to decide, …"""
    requests = RepoRequestStore(gateway.db)
    if path.startswith("/v1/budgets/{scope}"):
        await budgeting.set_budget(
            gateway.db, "", scope="team", name="payments", monthly_micros=10**8, by="test"
        )
    elif path in ("/v1/repos/requests/{target}/approve", "/v1/repos/requests/{target}/deny"):
        await requests.add(RepoRequest(REPO, "developer@example.com", "on call"))
    elif path == "/v1/repos/requests" and method == "POST":
        await gateway.db.execute(repo_requests.delete(), "clear requests")
    elif path == "/v1/repos/requests/{request_id}":
        await gateway.db.execute(repo_requests.delete(), "clear requests")
        await requests.add(
            RepoRequest(REPO, f"{role}@example.com", "on call", id=MATRIX_REQUEST_ID)
        )
    elif path == "/v1/killswitches/{scope}":
        await service.throw_killswitch(
            PolicyStore(gateway.db), Principal("sec@example.com", roles=("security",)),
            scope="global", reason="drill",
        )  # fmt: skip
    elif path.startswith(("/v1/audit/sessions", "/v1/audit/investigate")):
        entry = AuditCapture().entry(
            request_id=MATRIX_AUDITED,
            ts=1_795_000_000.0,
            parsed={"messages": [{"role": "user", "content": "matrix check"}]},
            developer="dev@example.com",
            session_id=MATRIX_SESSION,
        )
        await write_audit(gateway.db, [entry])  # idempotent
    elif path == "/v1/audit/holds/{hold_id}":
        await gateway.db.execute(audit_holds.delete(), "clear holds")
        await gateway.db.execute(
            audit_holds.insert().values(
                id=MATRIX_HOLD_ID, scope="repository", value=REPO, reason="matter 7",
                created_by="sec@example.com", created_ts=1_795_000_000.0,
            ),
            "place a hold",
        )  # fmt: skip
    elif path == "/v1/models/revoke":
        await service.approve_model(
            PolicyStore(gateway.db), Principal("sec@example.com", roles=("security",)),
            model="claude-next-*", reason="drill",
        )  # fmt: skip


async def _keys(gateway: Gateway) -> dict[str, str]:
    return {
        role: await gateway.key(email=f"{role}@example.com", team="payments", roles=(role,))
        for role in ROLES
    }


async def test_the_matrix_lists_every_route(gateway: Gateway) -> None:
    document = (await gateway.client.get("/admin/api/openapi.json")).json()
    served = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    assert served == set(MATRIX)


@pytest.mark.parametrize(("method", "path"), list(MATRIX), ids=lambda v: str(v))
async def test_each_route_admits_exactly_its_roles(
    gateway: Gateway, method: str, path: str
) -> None:
    allowed, request = MATRIX[(method, path)]
    keys = await _keys(gateway)
    url = "/admin/api" + _concrete(path)
    anonymous = await gateway.client.request(method, url, **request)
    assert anonymous.status_code == 401, anonymous.text
    for role, key in keys.items():
        await _prepare(gateway, method, path, role)
        response = await gateway.client.request(
            method, url, headers={"authorization": f"Bearer {key}"}, **request
        )
        if role in allowed:
            assert response.status_code < 400, (role, response.text)
        else:
            assert response.status_code == 403, (role, response.text)
            error = response.json()["error"]
            assert error["type"] == "permission_error"
            if (method, path) in DECIDED_BY_OWNER:
                assert f"{role}@example.com may not decide access to {REPO}" in error["message"]
            else:
                assert f"{role}@example.com may not {method} {url}" in error["message"]


async def test_an_engineering_manager_sees_their_own_team_only(gateway: Gateway) -> None:
    await gateway.db.insert_usage(
        [
            UsageRecord(
                ts=1_795_000_000.0,
                developer=f"{who}@example.com",
                team=team,
                cost_micros=micros,
                input_tokens=1,
            )
            for who, team, micros in (
                ("ada", "payments", 1_000_000),
                ("bob", "search", 2_000_000),
            )
        ]
    )
    manager = await gateway.key(email="em@example.com", team="payments", roles=("eng-manager",))
    finance = await gateway.key(email="fin@example.com", team="", roles=("finance",))
    month = "2026-11"
    seen = {}
    for name, key in (("manager", manager), ("finance", finance)):
        response = await gateway.client.get(
            "/admin/api/v1/chargeback/report",
            params={"month": month, "by": "team"},
            headers={"x-api-key": key},
        )
        assert response.status_code == 200, response.text
        seen[name] = {row["key"]: row["cost_micros"] for row in response.json()["rows"]}
    assert seen["manager"] == {"payments": 1_000_000}
    assert seen["finance"] == {"payments": 1_000_000, "search": 2_000_000}


async def test_bad_input_is_an_anthropic_shaped_400(gateway: Gateway) -> None:
    key = await gateway.key(roles=("finance",))
    for params in ({"month": "2026-13"}, {"by": "colour"}, {"month": "x", "day": "y"}):
        response = await gateway.client.get(
            "/admin/api/v1/chargeback/report", params=params, headers={"x-api-key": key}
        )
        assert response.status_code == 400, response.text
        assert response.json()["error"]["type"] == "invalid_request_error"
        assert "Traceback" not in response.text


async def test_openapi_document_and_docs_are_served(gateway: Gateway) -> None:
    document = await gateway.client.get("/admin/api/openapi.json")
    assert document.status_code == 200
    assert document.json()["info"]["title"] == "Gatehouse admin API"
    docs = await gateway.client.get("/admin/api/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


async def test_budgets_through_the_api_are_recorded_with_who(gateway: Gateway) -> None:
    finance = {"x-api-key": await gateway.key(email="fin@example.com", roles=("finance",))}
    manager = {
        "x-api-key": await gateway.key(
            email="em@example.com", team="payments", roles=("eng-manager",)
        )
    }
    put = await gateway.client.put(
        "/admin/api/v1/budgets/team/payments",
        json={"monthly_usd": "1000.50", "soft": "0.75"},
        headers=finance,
    )
    assert put.status_code == 200, put.text
    assert put.json()["monthly_usd"] == "$1,000.50"
    assert put.json()["soft_permille"] == 750
    other = await gateway.client.put(
        "/admin/api/v1/budgets/team/search", json={"monthly_usd": "10"}, headers=finance
    )
    assert other.status_code == 200

    seen = await gateway.client.get("/admin/api/v1/budgets", headers=manager)
    assert [(b["scope"], b["name"]) for b in seen.json()] == [("team", "payments")]

    raised = await gateway.client.post(
        "/admin/api/v1/budgets/team/payments/exceptions",
        json={"amount_usd": "200", "until": "2099-12-31", "reason": "migration week"},
        headers=manager,
    )
    assert raised.status_code == 200, raised.text
    assert raised.json()["granted_by"] == "em@example.com"
    assert raised.json()["limits"]["monthly"] == "$1,200.50"
    refused = await gateway.client.post(
        "/admin/api/v1/budgets/team/search/exceptions",
        json={"amount_usd": "200", "until": "2099-12-31", "reason": "not mine"},
        headers=manager,
    )
    assert refused.status_code == 403
    assert "payments" in refused.json()["error"]["message"]

    events = await gateway.db.query_events(kind="budget_exception_granted")
    assert [(e.detail.get("granted_by"), e.detail.get("reason")) for e in events] == [
        ("em@example.com", "migration week")
    ]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"monthly_usd": "lots"}, "monthly_usd"),
        ({"monthly_usd": "-5"}, "monthly_usd"),
        ({"monthly_usd": "10", "soft": "2x"}, "soft"),
        ({}, "monthly_usd"),
    ],
)
async def test_bad_budget_terms_are_400s_that_name_the_field(
    gateway: Gateway, body: dict[str, Any], fragment: str
) -> None:
    key = await gateway.key(roles=("platform-admin",))
    response = await gateway.client.put(
        "/admin/api/v1/budgets/team/payments", json=body, headers={"x-api-key": key}
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]


async def test_a_repository_budget_is_addressed_by_its_path(gateway: Gateway) -> None:
    key = {"x-api-key": await gateway.key(roles=("finance",))}
    url = "/admin/api/v1/budgets/repository/github.com/acme/payments"
    assert (await gateway.client.put(url, json={"monthly_usd": "50"}, headers=key)).is_success
    raised = await gateway.client.post(
        url + "/exceptions",
        json={"amount_usd": "5", "until": "2099-01-01", "reason": "incident"},
        headers=key,
    )
    assert raised.status_code == 200, raised.text
    assert raised.json()["limits"]["monthly"] == "$55.00"
    assert (await gateway.client.delete(url, headers=key)).json()["name"] == (
        "github.com/acme/payments"
    )
    assert (await gateway.client.delete(url, headers=key)).status_code == 404
