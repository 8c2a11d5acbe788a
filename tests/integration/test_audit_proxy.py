"""The audit trail fed by the data plane: real exchanges in, a transcript and blocks out."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gatehouse.audit.crypto import new_key_line, plaintext
from gatehouse.audit.transcript import rebuild, render
from gatehouse.policy.document import Policy
from gatehouse.policy.guardactions import GuardActions
from gatehouse.settings import Settings
from gatehouse.store.policy import PolicyStore
from gatehouse.store.schema import audit_blocks, audit_records
from tests.conftest import Gateway, running_gateway

SESSION = "0d9b8c7a-6f5e-4d3c-9b2a-1f0e9d8c7b6a"
AWS = "AKIA" + "Q3XZ7LPA2MHRTN6W"
SYSTEM = [{"type": "text", "text": "You are Claude Code. " * 200}]


def _turn(history: list[dict[str, Any]], text: str) -> dict[str, Any]:
    messages = [*history, {"role": "user", "content": [{"type": "text", "text": text}]}]
    return {
        "model": "claude-sonnet-4-6",
        "max_tokens": 64,
        "stream": True,
        "system": SYSTEM,
        "messages": messages,
    }


async def _drain(gateway: Gateway) -> None:
    await gateway.app.state.services.drainer.flush()  # type: ignore[attr-defined]


async def _contents(gateway: Gateway) -> list[bytes]:
    rows = await gateway.db.fetch_all(sa.select(audit_blocks), "read blocks")
    return [plaintext(r["digest"], r["key_id"], r["content"], None) for r in rows]


async def test_a_session_is_kept_once_per_block_and_rebuilt(gateway: Gateway) -> None:
    key = await gateway.key()
    headers = {"x-api-key": key, "x-claude-code-session-id": SESSION}
    history: list[dict[str, Any]] = []
    for text in ("first question", "second question", "third question"):
        body = _turn(history, text)
        response = await gateway.client.post("/v1/messages", json=body, headers=headers)
        assert response.status_code == 200
        answer = [
            line for line in response.text.splitlines() if line.startswith("data:")
        ]  # the stream ran to the end
        assert answer
        history = [*body["messages"], {"role": "assistant", "content": "ok"}]
    await _drain(gateway)
    records = await gateway.db.fetch_all(
        sa.select(audit_records).where(audit_records.c.kind == "request"), "read records"
    )
    assert [r["seq"] for r in sorted(records, key=lambda r: r["seq"])] == [1, 2, 3]
    assert {r["chain"] for r in records} == {SESSION}
    # The 4 KB system prompt is sent three times and stored once.
    contents = await _contents(gateway)
    assert sum(b"You are Claude Code." in c for c in contents) == 1
    transcript = await rebuild(gateway.db, SESSION)
    assert len(transcript.turns) == 3
    markdown = render(transcript, "md")
    for text in ("first question", "second question", "third question"):
        assert markdown.count(text) == 1
    assert transcript.turns[0].response  # the answer, reassembled from the stream


async def test_the_audit_copy_never_holds_a_secret(gateway: Gateway) -> None:
    # Even where security chose to only flag secrets, the audit copy hides them.
    await PolicyStore(gateway.db).apply(
        Policy(mode="observe", guardrails=GuardActions(actions={"secrets": "flag"})),
        author="sec@acme.com",
        reason="test",
    )
    await gateway.app.state.services.policy.refresh()  # type: ignore[attr-defined]
    key = await gateway.key()
    headers = {"x-api-key": key, "x-claude-code-session-id": SESSION}
    body = _turn([], f"deploy with aws key {AWS} please")
    response = await gateway.client.post("/v1/messages", json=body, headers=headers)
    assert response.status_code == 200
    [usage] = await gateway.usage(1)
    assert usage.guard == "flagged"
    await _drain(gateway)
    contents = await _contents(gateway)
    assert not any(AWS.encode() in c for c in contents)
    assert any(b"[REDACTED:aws-access-key-id]" in c for c in contents)
    records = await gateway.db.fetch_all(sa.select(audit_records), "read records")
    assert {r["action"] for r in records if r["kind"] == "admin"} >= {"policy_changed"}
    [record] = [r for r in records if r["kind"] == "request"]
    assert record["guard"] == "flagged" and AWS not in (record["findings"] or "")


async def test_encrypted_at_rest_and_read_back_through_the_api(
    settings: Settings, tmp_path: Path
) -> None:
    keys = tmp_path / "audit.keys"
    keys.write_text(new_key_line() + "\n")
    configured = dataclasses.replace(settings, audit_key_file=str(keys))
    async with running_gateway(configured) as gateway:
        key = await gateway.key()
        headers = {"x-api-key": key, "x-claude-code-session-id": SESSION}
        prompt = "the quarterly migration plan for ledger shards " * 20
        response = await gateway.client.post(
            "/v1/messages", json=_turn([], prompt), headers=headers
        )
        assert response.status_code == 200
        await _drain(gateway)
        rows = await gateway.db.fetch_all(
            sa.select(audit_blocks).where(audit_blocks.c.kind != "admin"), "read blocks"
        )
        assert rows and all(r["key_id"] for r in rows)
        assert not any(b"ledger shards" in r["content"] for r in rows)
        security = await gateway.key(email="sec@example.com", roles=("security",))
        transcript = await gateway.client.get(
            f"/admin/api/v1/audit/sessions/{SESSION}/transcript",
            params={"format": "md"},
            headers={"x-api-key": security},
        )
        assert transcript.status_code == 200, transcript.text
        assert "quarterly migration plan for ledger shards" in transcript.text
