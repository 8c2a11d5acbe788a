"""Live guardrails on the data plane, in-process, against the simulator."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from gatehouse.guardrails.screen import Screener
from gatehouse.policy.document import Policy
from gatehouse.policy.guardactions import GuardActions
from gatehouse.settings import Settings
from gatehouse.store.guard import guard_verdicts
from gatehouse.store.policy import PolicyStore
from gatehouse.store.schema import audit_records
from tests.conftest import Gateway, running_gateway

AWS = "AKIA" + "Q3XZ7LPA2MHRTN6W"
SESSION = "5b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d"


def _echo(tool_output: str) -> dict[str, Any]:
    """The simulator's TOOL_LOOP_ECHO answer quotes the tool result it received."""
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "TOOL_LOOP_ECHO please"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": tool_output}],
            },
        ],
    }


def _headers(key: str) -> dict[str, str]:
    return {"x-api-key": key, "x-claude-code-session-id": SESSION}


async def _events(gateway: Gateway, kind: str) -> list[Any]:
    await gateway.app.state.services.drainer.flush()  # type: ignore[attr-defined]
    return [e for e in await gateway.db.query_events(limit=100) if e.kind == kind]


async def test_a_secret_is_redacted_before_it_leaves(gateway: Gateway) -> None:
    key = await gateway.key()
    response = await gateway.client.post(
        "/v1/messages", json=_echo(f"aws_access_key_id = {AWS}"), headers=_headers(key)
    )
    assert response.status_code == 200, response.text
    [answer] = response.json()["content"]
    assert answer["text"] == "The tool printed: aws_access_key_id = [REDACTED:aws-access-key-id]"
    [record] = await gateway.usage(1)
    assert (record.guard, record.guard_findings) == ("redacted", 1)
    [event] = await _events(gateway, "guardrail_finding")
    assert event.session_id == SESSION and event.developer == "dev@example.com"
    [finding] = event.detail["findings"]
    assert finding["rule"] == "aws-access-key-id"
    assert finding["block"] == "messages[2].content[0].content"
    assert AWS not in orjson.dumps(event.to_dict()).decode()


async def test_a_classification_marker_blocks_without_echoing(gateway: Gateway) -> None:
    key = await gateway.key()
    response = await gateway.client.post(
        "/v1/messages", json=_echo("TLP:RED incident notes"), headers=_headers(key)
    )
    assert response.status_code == 403
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == "permission_error"
    message = error["error"]["message"]
    assert "markers" in message and "tlp-red" in message
    assert "messages[2].content[0].content" in message and "incident notes" not in message
    [record] = await gateway.usage(1)
    assert (record.status, record.guard) == (403, "blocked")


async def test_the_policy_changes_actions_per_team(gateway: Gateway) -> None:
    services = gateway.app.state.services  # type: ignore[attr-defined]
    guardrails = GuardActions(teams={"payments": {"markers": "flag", "secrets": "block"}})
    await PolicyStore(gateway.db).apply(
        Policy(mode="observe", guardrails=guardrails), author="sec@acme.com", reason="test"
    )
    await services.policy.refresh()
    key = await gateway.key(team="payments")
    flagged = await gateway.client.post(
        "/v1/messages", json=_echo("TLP:RED notes"), headers=_headers(key)
    )
    assert flagged.status_code == 200
    blocked = await gateway.client.post("/v1/messages", json=_echo(AWS), headers=_headers(key))
    assert blocked.status_code == 403 and "secrets" in blocked.json()["error"]["message"]
    other = await gateway.key(email="o@example.com", team="web")
    redacted = await gateway.client.post("/v1/messages", json=_echo(AWS), headers=_headers(other))
    assert redacted.status_code == 200
    verdicts = {r.guard for r in await gateway.usage(3)}
    assert verdicts == {"flagged", "blocked", "redacted"}


async def test_every_request_gets_a_verdict(gateway: Gateway) -> None:
    key = await gateway.key()
    for text in ("hello", "fine"):
        body = {"model": "claude-sonnet-4-6", "max_tokens": 8, "stream": True}
        body["messages"] = [{"role": "user", "content": text}]
        response = await gateway.client.post("/v1/messages", json=body, headers=_headers(key))
        assert response.status_code == 200
    counted = await gateway.client.post(
        "/v1/messages/count_tokens", json=_echo(AWS), headers=_headers(key)
    )
    assert counted.status_code == 200
    records = await gateway.usage(3)
    assert sorted(r.guard for r in records) == ["clean", "clean", "redacted"]
    verdicts = await guard_verdicts(gateway.db, time.time() - 60)
    assert verdicts == {"clean": 2, "redacted": 1}


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_a_scanner_failure_is_recorded_and_fails_as_configured(
    settings: Settings, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: Screener, *args: object) -> None:
        raise RuntimeError(f"boom {AWS}")

    monkeypatch.setattr(Screener, "screen", broken)
    async with running_gateway(dataclasses.replace(settings, guard_fail=mode)) as gateway:
        key = await gateway.key()
        response = await gateway.client.post(
            "/v1/messages", json=_echo("hello"), headers=_headers(key)
        )
        if mode == "open":
            assert response.status_code == 200
        else:
            assert response.status_code == 503
            assert "fail closed" in response.json()["error"]["message"]
        [record] = await gateway.usage(1)
        assert record.guard == "error"
        [event] = await _events(gateway, "guardrail_error")
        assert event.severity == "critical" and AWS not in orjson.dumps(event.to_dict()).decode()
        # Unscreened content is not kept: the audit trail has the record, not the blocks.
        query = sa.select(audit_records).where(audit_records.c.kind == "request")
        [audited] = await gateway.db.fetch_all(query, "read audit records")
        assert (audited["guard"], orjson.loads(audited["tail"])) == ("error", [])


async def test_operator_markers_from_the_rules_file(settings: Settings, tmp_path: Path) -> None:
    rules = tmp_path / "guard.yaml"
    rules.write_text("markers:\n  - CONFIDENTIAL\n  - text: Project Nightingale\n")
    configured = dataclasses.replace(settings, guard_rules=str(rules))
    async with running_gateway(configured) as gateway:
        key = await gateway.key()
        response = await gateway.client.post(
            "/v1/messages", json=_echo("the project nightingale plan"), headers=_headers(key)
        )
        assert response.status_code == 200  # markers are case-sensitive unless told otherwise
        response = await gateway.client.post(
            "/v1/messages", json=_echo("CONFIDENTIAL: roadmap"), headers=_headers(key)
        )
        assert response.status_code == 403
        assert "marker-confidential" in response.json()["error"]["message"]
