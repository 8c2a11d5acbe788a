"""Path rules and repository identity on the hot path, in-process, against the simulator."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from gatehouse.audit.crypto import plaintext
from gatehouse.policy.document import PathRule, Policy, RepoRule
from gatehouse.store.policy import PolicyStore
from gatehouse.store.schema import audit_blocks
from tests.conftest import Gateway

PAYMENTS = "github.com/acme/payments"
SESSION = "7e1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b"
ROOT = "/home/dev/payments"
SECRET = "STRIPE_KEY=sk_live_never_upstream"


@pytest.fixture
def policy_mode() -> str:
    return "enforce"


async def _approve(gateway: Gateway, *paths: PathRule) -> None:
    rule = RepoRule("confidential", paths, "sec@acme.com")
    await PolicyStore(gateway.db).apply(
        Policy(repositories={PAYMENTS: rule}), author="sec@acme.com", reason="test"
    )
    await gateway.app.state.services.policy.refresh()  # type: ignore[attr-defined]


def _read_loop(path: str) -> dict[str, Any]:
    """Claude Code's shape: prompt, role:system environment, Read tool_use, its result."""
    environment = f"# Environment\n - Primary working directory: {ROOT}\n - Platform: linux"
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "TOOL_LOOP_ECHO please"}]},
            {"role": "system", "content": [{"type": "text", "text": environment}]},
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": "toolu_01",
                        "name": "Read",
                        "input": {"file_path": path},
                    }
                ],
            },
            {
                "role": "user",
                "content": [
                    {"tool_use_id": "toolu_01", "type": "tool_result", "content": f"1→{SECRET}"}
                ],
            },
        ],
    }


def _headers(key: str, repo: str = PAYMENTS, session: str = SESSION) -> dict[str, str]:
    return {"x-api-key": key, "x-claude-code-session-id": session, "x-gatehouse-repo": repo}


async def test_a_redacted_read_never_reaches_the_upstream(gateway: Gateway) -> None:
    await _approve(gateway, PathRule("secrets/**", "redact", "secrets"))
    key = await gateway.key()
    response = await gateway.client.post(
        "/v1/messages", json=_read_loop(f"{ROOT}/secrets/prod.env"), headers=_headers(key)
    )
    assert response.status_code == 200, response.text
    # The simulator's reply quotes the tool result it received.
    [answer] = response.json()["content"]
    assert answer["text"] == (
        "The tool printed: "
        '[gatehouse: content of secrets/prod.env withheld by path rule "secrets" (redact)]'
    )
    [record] = await gateway.usage(1)
    assert (record.status, record.repository, record.repository_source) == (200, PAYMENTS, "header")
    events = await gateway.db.query_events(kind="path_rule_applied")
    assert [(e.detail["rule"], e.detail["path"], e.detail["tool"]) for e in events] == [
        ("secrets", "secrets/prod.env", "Read")
    ]


async def test_a_block_rule_refuses_with_the_rule_and_path(gateway: Gateway) -> None:
    await _approve(gateway, PathRule("**/*.pem", "block", "private keys"))
    key = await gateway.key()
    response = await gateway.client.post(
        "/v1/messages", json=_read_loop(f"{ROOT}/deploy/tls.pem"), headers=_headers(key)
    )
    assert response.status_code == 403, response.text
    assert response.headers["x-should-retry"] == "false"
    error = response.json()["error"]
    assert error["type"] == "permission_error"
    assert '"private keys"' in error["message"] and "deploy/tls.pem" in error["message"]
    assert SECRET not in error["message"]
    [record] = await gateway.usage(1)
    assert (record.status, record.error_type) == (403, "permission_error")


async def test_unmatched_requests_go_out_unchanged(gateway: Gateway) -> None:
    await _approve(gateway, PathRule("secrets/**"))
    key = await gateway.key()
    response = await gateway.client.post(
        "/v1/messages", json=_read_loop(f"{ROOT}/src/app.py"), headers=_headers(key)
    )
    assert response.json()["content"][0]["text"] == f"The tool printed: 1→{SECRET}"


async def test_a_session_keeps_its_repository_and_reports_a_change(gateway: Gateway) -> None:
    await _approve(gateway)
    key = await gateway.key()
    hello = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}],
    }
    first = await gateway.client.post("/v1/messages", json=hello, headers=_headers(key))
    assert first.status_code == 200, first.text
    # A background call without the header inherits the session's repository.
    background = {"x-api-key": key, "x-claude-code-session-id": SESSION}
    inherited = await gateway.client.post("/v1/messages", json=hello, headers=background)
    assert inherited.status_code == 200, inherited.text
    # Claiming another repository mid-session: attributed to the first one, reported
    # once, and refused while that other repository is not approved itself — its
    # content must not ride on the session's approval.
    for _ in range(2):
        changed = await gateway.client.post(
            "/v1/messages", json=hello, headers=_headers(key, "github.com/acme/ledger")
        )
        assert changed.status_code == 403, changed.text
        assert "github.com/acme/ledger" in changed.json()["error"]["message"]
    records = await gateway.usage(4)
    assert [(r.repository, r.repository_source, r.status) for r in records] == [
        (PAYMENTS, "header", 200),
        (PAYMENTS, "session", 200),
        (PAYMENTS, "session", 403),
        (PAYMENTS, "session", 403),
    ]
    [event] = await gateway.db.query_events(kind="repo_claim_mismatch")
    assert event.session_id == SESSION
    assert event.detail["conflicts"] == [{"source": "header", "value": "github.com/acme/ledger"}]


async def test_count_tokens_carries_the_context_so_the_rules_apply(gateway: Gateway) -> None:
    await _approve(gateway, PathRule("**/*.pem", "block", "private keys"))
    key = await gateway.key()
    body = _read_loop(f"{ROOT}/deploy/tls.pem")
    del body["max_tokens"]
    response = await gateway.client.post(
        "/v1/messages/count_tokens", json=body, headers=_headers(key)
    )
    assert response.status_code == 403, response.text
    assert "deploy/tls.pem" in response.json()["error"]["message"]


async def test_the_audit_trail_keeps_what_the_path_rules_left(gateway: Gateway) -> None:
    await _approve(gateway, PathRule("secrets/**", "redact", "secrets"))
    key = await gateway.key()
    response = await gateway.client.post(
        "/v1/messages", json=_read_loop(f"{ROOT}/secrets/prod.env"), headers=_headers(key)
    )
    assert response.status_code == 200
    await gateway.app.state.services.drainer.flush()  # type: ignore[attr-defined]
    rows = await gateway.db.fetch_all(sa.select(audit_blocks), "read blocks")
    contents = [plaintext(r["digest"], r["key_id"], r["content"], None) for r in rows]
    assert any(b"withheld by path rule" in c for c in contents)
    assert not any(SECRET.encode() in c for c in contents)
