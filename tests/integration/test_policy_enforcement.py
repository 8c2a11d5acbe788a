"""The policy on the hot path, in-process: allow-list, observe mode, vendor veto, kill switch."""

from __future__ import annotations

import dataclasses
import uuid

import pytest

from gatehouse.identity.principal import Principal
from gatehouse.policy import service
from gatehouse.policy.document import PathRule, Policy, RepoRule
from gatehouse.settings import Settings, SettingsError
from gatehouse.store.policy import PolicyStore
from tests.conftest import Gateway, running_gateway

PAYMENTS = "github.com/acme/payments"
SECURITY = Principal("sec@acme.com", roles=("security",))
PLATFORM = Principal("ops@acme.com", roles=("platform-admin",))
DEV = Principal("dev@example.com", roles=("developer",))
SESSION = "5d0c3e1a-8a1b-4f0e-9b51-0f0c6c1d2e3f"


@pytest.fixture
def policy_mode() -> str:
    return "enforce"


def _body(model: str = "claude-sonnet-4-6") -> dict[str, object]:
    return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


def _headers(key: str, repo: str | None = PAYMENTS, session: str = "") -> dict[str, str]:
    # A session keeps the repository it first resolved: a new one per request by default.
    headers = {"x-api-key": key, "x-claude-code-session-id": session or str(uuid.uuid4())}
    if repo is not None:
        headers["x-gatehouse-repo"] = repo
    return headers


async def _change(gateway: Gateway, policy: Policy) -> None:
    await PolicyStore(gateway.db).apply(policy, author="sec@acme.com", reason="test")
    await _reload(gateway)


async def _reload(gateway: Gateway) -> None:
    await gateway.app.state.services.policy.refresh()  # type: ignore[attr-defined]


def _refusal(response, status: int = 403) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["type"] == "permission_error"
    assert response.headers["x-should-retry"] == "false"
    return str(body["error"]["message"])


async def test_default_policy_denies_every_repository(gateway: Gateway) -> None:
    key = await gateway.key()
    message = _refusal(
        await gateway.client.post("/v1/messages", json=_body(), headers=_headers(key))
    )
    assert f'gatehouse repos request {PAYMENTS} --reason "' in message
    message = _refusal(
        await gateway.client.post("/v1/messages", json=_body(), headers=_headers(key, None))
    )
    assert "X-Gatehouse-Repo" in message
    records = await gateway.usage(2)
    assert [(r.status, r.error_type) for r in records] == [(403, "permission_error")] * 2
    assert records[0].repository == PAYMENTS


async def test_an_approved_repository_is_served_and_others_are_not(gateway: Gateway) -> None:
    key = await gateway.key()
    rule = RepoRule("internal", (PathRule("secrets/**"),), "sec@acme.com")
    await _change(gateway, Policy(repositories={PAYMENTS: rule}))
    served = await gateway.client.post(
        "/v1/messages", json=_body(), headers=_headers(key, "git@GitHub.com:acme/payments.git")
    )
    assert served.status_code == 200, served.text
    other = await gateway.client.post(
        "/v1/messages", json=_body(), headers=_headers(key, "github.com/acme/ledger")
    )
    assert "github.com/acme/ledger" in _refusal(other)


async def test_count_tokens_and_models_skip_the_allow_list(gateway: Gateway) -> None:
    key = await gateway.key()
    counted = await gateway.client.post(
        "/v1/messages/count_tokens", json=_body(), headers=_headers(key, None)
    )
    assert counted.status_code == 200, counted.text
    listed = await gateway.client.get("/v1/models", headers={"x-api-key": key})
    assert listed.status_code == 200, listed.text


async def test_the_policy_model_list_is_a_veto(gateway: Gateway) -> None:
    key = await gateway.key()
    store = PolicyStore(gateway.db)
    await store.apply(Policy(repositories={PAYMENTS: RepoRule()}), author="t", reason="t")
    await service.propose_model(store, PLATFORM, model="claude-haiku-*", reason="cheaper")
    with pytest.raises(Exception, match="security"):
        await service.approve_model(store, PLATFORM, model="claude-haiku-*", reason="x")
    await service.approve_model(store, SECURITY, model="claude-haiku-*", reason="reviewed")
    await _reload(gateway)
    refused = await gateway.client.post(
        "/v1/messages", json=_body("claude-sonnet-4-6"), headers=_headers(key)
    )
    assert "Approved: claude-haiku-*" in _refusal(refused)
    batch = {"requests": [{"custom_id": "a", "params": _body("claude-opus-4-1")}]}
    refused = await gateway.client.post("/v1/messages/batches", json=batch, headers=_headers(key))
    assert "claude-opus-4-1" in _refusal(refused)
    served = await gateway.client.post(
        "/v1/messages", json=_body("claude-haiku-4-5"), headers=_headers(key)
    )
    assert served.status_code == 200, served.text


async def test_a_kill_switch_stops_everything_in_scope_then_lifts(gateway: Gateway) -> None:
    key = await gateway.key()  # team payments
    store = PolicyStore(gateway.db)
    await _change(gateway, Policy(repositories={PAYMENTS: RepoRule()}))
    with pytest.raises(Exception, match="on security's instruction"):
        await service.throw_killswitch(store, PLATFORM, scope="team:payments", reason="x")
    with pytest.raises(Exception, match="only the security role"):
        await service.throw_killswitch(store, DEV, scope="global", reason="x")
    await service.throw_killswitch(
        store, PLATFORM, scope="team:payments", reason="token leak", on_behalf_of="sec@acme.com"
    )
    await _reload(gateway)
    for method, path, body in (
        ("POST", "/v1/messages", _body()),
        ("POST", "/v1/messages/count_tokens", _body()),
        ("GET", "/v1/models", None),
    ):
        response = await gateway.client.request(method, path, json=body, headers=_headers(key))
        message = _refusal(response)
        assert "team payments" in message and "sec@acme.com" in message
        assert "token leak" not in message
    other = await gateway.key("bo@example.com", team="web")
    assert (
        await gateway.client.post("/v1/messages", json=_body(), headers=_headers(other))
    ).status_code == 200
    await service.lift_killswitch(store, SECURITY, scope="team:payments", reason="rotated")
    await _reload(gateway)
    served = await gateway.client.post("/v1/messages", json=_body(), headers=_headers(key))
    assert served.status_code == 200, served.text
    kinds = [e.kind for e in await gateway.db.query_events()]
    assert "killswitch_thrown" in kinds and "killswitch_lifted" in kinds
    [thrown] = await gateway.db.query_events(kind="killswitch_thrown")
    assert thrown.detail["author"] == "ops@acme.com on behalf of sec@acme.com"


async def test_observe_mode_serves_and_records_what_it_would_deny(settings: Settings) -> None:
    async with running_gateway(dataclasses.replace(settings, policy_mode="observe")) as gateway:
        key = await gateway.key()
        for _ in range(3):
            response = await gateway.client.post(
                "/v1/messages", json=_body(), headers=_headers(key, session=SESSION)
            )
            assert response.status_code == 200, response.text
        await gateway.usage(3)
        [event] = await gateway.db.query_events(kind="policy_would_deny")
        assert event.detail["reason"] == "repository_not_approved"
        assert (event.session_id, event.repository) == (SESSION, PAYMENTS)
        # Kill switches apply in observe mode too.
        await service.throw_killswitch(
            PolicyStore(gateway.db), SECURITY, scope="global", reason="incident", show_reason=True
        )
        await _reload(gateway)
        message = _refusal(
            await gateway.client.post("/v1/messages", json=_body(), headers=_headers(key))
        )
        assert "Reason: incident." in message


async def test_observed_teams_are_served_while_others_are_denied(gateway: Gateway) -> None:
    await _change(gateway, Policy(observe_teams=frozenset({"payments"})))
    observed = await gateway.key()
    enforced = await gateway.key("bo@example.com", team="web")
    ok = await gateway.client.post("/v1/messages", json=_body(), headers=_headers(observed))
    assert ok.status_code == 200, ok.text
    _refusal(await gateway.client.post("/v1/messages", json=_body(), headers=_headers(enforced)))


def test_a_malformed_policy_mode_stops_start_up(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SettingsError, match="policy_mode"):
        Settings(data_dir=tmp_path, policy_mode="audit")
    with pytest.raises(SettingsError, match="policy_mode"):
        Settings.load({"GATEHOUSE_POLICY_MODE": "strict"})
