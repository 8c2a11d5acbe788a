"""The audit trail's read side over a real store: search, transcripts, investigations, CLI.

Sessions are written the way the gateway writes them (`AuditCapture` entries
through `write_audit`), so base/tail resolution, echoed answers and encryption
are exercised as they happen in production.
"""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from gatehouse.audit import search as search_module
from gatehouse.audit.capture import AuditCapture
from gatehouse.audit.crypto import Keyring
from gatehouse.audit.investigate import INVESTIGATED, investigate
from gatehouse.audit.search import Filters, search
from gatehouse.audit.store import write_audit
from gatehouse.audit.transcript import rebuild, render
from gatehouse.cli.main import app
from gatehouse.content import make_block
from gatehouse.errors import InvalidRequest, NotFound
from gatehouse.events import Event
from gatehouse.settings import Settings
from gatehouse.store.db import Database
from tests.conftest import require

T0 = 1_795_000_000.0
ADA = "ada@example.com"
BOB = "bob@example.com"
PAYMENTS = "github.com/acme/payments"
SEARCH_REPO = "github.com/acme/search"
SESSION_A = "5f0c3a52-aaaa-4c1e-9d7e-000000000001"
SESSION_B = "5f0c3a52-bbbb-4c1e-9d7e-000000000002"
SYSTEM = [{"type": "text", "text": "You are Claude Code, Anthropic's CLI for Claude."}]
TOOLS = [{"name": "Bash", "description": "Run a shell command", "input_schema": {}}]
FINDING = {
    "detector": "secrets",
    "rule": "aws-access-key",
    "action": "flag",
    "path": "messages[0].content[0]",
    "start": 22,
    "end": 42,
    "excerpt": "AKIA************MPLE",
}


def session_entries(
    capture: AuditCapture,
    session: str,
    developer: str,
    repository: str,
    prompts: list[str],
    *,
    first_guard: str = "clean",
    ts: float = T0,
) -> list[dict[str, Any]]:
    """One Claude Code–shaped session: each prompt answered with text and a Bash call."""
    messages: list[dict[str, Any]] = []
    entries = []
    for turn, prompt in enumerate(prompts):
        if turn:
            result = {"type": "tool_result", "tool_use_id": f"toolu_{turn - 1}", "content": "ok"}
            messages.append({"role": "user", "content": [result, {"type": "text", "text": prompt}]})
        else:
            messages.append({"role": "user", "content": [{"type": "text", "text": prompt}]})
        parsed = {"model": "claude-sonnet-4-5", "max_tokens": 8000, "system": SYSTEM}
        parsed |= {"tools": TOOLS, "messages": list(messages)}
        answer = [
            {"type": "text", "text": f"Answer {turn} about {prompt.split()[0]}"},
            {"type": "tool_use", "id": f"toolu_{turn}", "name": "Bash", "input": {"command": "ls"}},
        ]
        response = [make_block(f"content[{i}]", "assistant", b) for i, b in enumerate(answer)]
        entry = capture.entry(
            request_id=f"gh_{session[-4:]}_{turn:03d}",
            ts=ts + turn * 10,
            parsed=parsed,
            response=response,
            developer=developer,
            team="payments" if developer == ADA else "search",
            session_id=session,
            repository=repository,
            model="claude-sonnet-4-5",
            cost_micros=12_345 + turn,
            ttfb_ms=420.0,
            duration_ms=3_100.0,
            headers={"user-agent": "claude-cli/2.1.332 (external, cli)", "x-api-key": "nope"},
            guard=first_guard if turn == 0 else "clean",
            findings=[FINDING] if turn == 0 and first_guard != "clean" else [],
            decision="allowed",
        )
        capture.spooled(entry)
        entries.append(entry)
        messages.append({"role": "assistant", "content": answer})
    return entries


async def populate(db: Database, keyring: Keyring | None = None) -> Event:
    capture = AuditCapture()
    entries = session_entries(
        capture,
        SESSION_A,
        ADA,
        PAYMENTS,
        [
            "deploy with key AKIAIOSFODNN7EXAMPLE to prod",
            "refund the duplicate invoice <script>alert(1)</script>",
            "write the payments migration",
        ],
        first_guard="flagged",
    )
    entries += session_entries(
        capture,
        SESSION_B,
        BOB,
        SEARCH_REPO,
        ["tune the ranking invoice boost", "explain the index layout"],
        ts=T0 + 1000,
    )
    await write_audit(db, entries, keyring=keyring)
    event = Event(
        kind="guardrail_flagged",
        subject="secrets/aws-access-key in a prompt",
        severity="warning",
        developer=ADA,
        team="payments",
        repository=PAYMENTS,
        session_id=SESSION_A,
        detail={"request_id": f"gh_{SESSION_A[-4:]}_000"},
        ts=T0 + 1,
    )
    await db.insert_events([event])
    return event


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/audit.db"
    else:
        url = os.environ.get("GATEHOUSE_TEST_POSTGRES_URL", "")
        require(bool(url), "set GATEHOUSE_TEST_POSTGRES_URL to run PostgreSQL tests")
    database = await Database.open(Settings(database_url=url).resolved_database_url)
    if request.param == "postgresql":
        for table in ("audit_text", "audit_block_sessions", "audit_records", "audit_blocks"):
            await database.execute(sa.text(f"DELETE FROM {table}"), "reset")  # noqa: S608
        await database.execute(sa.text("DELETE FROM events"), "reset")
    try:
        yield database
    finally:
        await database.close()


async def test_search_finds_text_and_filters_narrow_it(db: Database) -> None:
    await populate(db)
    found = await search(db, "invoice")
    assert {(h.developer, h.session) for h in found.hits} == {(ADA, SESSION_A), (BOB, SESSION_B)}
    hit = (await search(db, "invoice", Filters(developer=ADA))).hits
    assert [h.repository for h in hit] == [PAYMENTS]
    assert "«invoice»" in hit[0].to_json()["snippet"]
    assert [h.session for h in (await search(db, "invoice", Filters(team="search"))).hits] == [
        SESSION_B
    ]
    flagged = await search(db, "AKIAIOSFODNN7EXAMPLE", Filters(guard="flagged"))
    assert [h.record_id for h in flagged.hits] == [f"gh_{SESSION_A[-4:]}_000"]
    assert not (await search(db, "AKIAIOSFODNN7EXAMPLE", Filters(guard="blocked"))).hits
    assert (await search(db, "invoice", Filters(decision="allowed"))).hits
    assert not (await search(db, "invoice", Filters(decision="denied"))).hits
    assert not (await search(db, "invoice", Filters(since=T0 + 5000))).hits
    assert len((await search(db, "invoice", Filters(until=T0 + 500))).hits) == 1


async def test_phrases_prefixes_exclusions_and_or(db: Database) -> None:
    await populate(db)
    assert len((await search(db, '"duplicate invoice"')).hits) == 1
    assert not (await search(db, '"invoice duplicate"')).hits
    assert {h.developer for h in (await search(db, "migrat*")).hits} == {ADA}
    assert {h.developer for h in (await search(db, "invoice -ranking")).hits} == {ADA}
    assert {h.developer for h in (await search(db, "ranking OR refund")).hits} == {ADA, BOB}


@pytest.mark.parametrize("narrow_records", [20_000, 0])
async def test_filters_reach_blocks_another_session_stored_first(
    db: Database, monkeypatch: pytest.MonkeyPatch, narrow_records: int
) -> None:
    # The system prompt is stored (and indexed) with Ada's session, then linked into
    # Bob's: a filter on Bob still finds it there.  0: never gather the filter's blocks
    # first (SQLite), so both plans answer the same.
    monkeypatch.setattr(search_module, "NARROW_RECORDS", narrow_records)
    await populate(db)
    assert {h.session for h in (await search(db, "Anthropic")).hits} == {SESSION_A, SESSION_B}
    for filters in (
        Filters(developer=BOB),
        Filters(team="search"),
        Filters(repository=SEARCH_REPO),
        Filters(session=SESSION_B),
        Filters(since=T0 + 1000),
        Filters(developer=BOB, model="claude-sonnet-4-5", guard="clean"),
    ):
        hits = (await search(db, "Anthropic", filters)).hits
        assert [(h.session, h.developer) for h in hits] == [(SESSION_B, BOB)], filters
        assert "«Anthropic»" in hits[0].to_json()["snippet"]
    assert not (await search(db, "Anthropic", Filters(developer=BOB, guard="flagged"))).hits
    flagged = (await search(db, "Anthropic", Filters(guard="flagged"))).hits
    assert [h.session for h in flagged] == [SESSION_A]
    limited = await search(db, "invoice OR Anthropic", Filters(since=T0), limit=1)
    assert len(limited.hits) == 1 and limited.more


@pytest.mark.parametrize(
    "query",
    ['"', "*", "NEAR(", "OR", "-", "col:x", 'body:"x', "a AND", "(((", "^x", "NOT NOT x", "'; --"],
)
async def test_hostile_queries_never_break_the_engine(db: Database, query: str) -> None:
    await populate(db)
    try:
        await search(db, query)
    except InvalidRequest as exc:
        refusal = exc.message
    else:
        refusal = "nothing to search for"
    assert "nothing to search for" in refusal


async def test_transcript_shows_the_conversation_with_verdicts_and_cost(db: Database) -> None:
    await populate(db)
    transcript = await rebuild(db, SESSION_A)
    assert [len(t.prompt) for t in transcript.turns] == [1, 2, 2]  # echoed answers left out
    assert transcript.client.startswith("claude-cli/")
    md = render(transcript, "md")
    assert "deploy with key AKIAIOSFODNN7EXAMPLE" in md
    assert "Answer 1 about refund" in md
    assert "tool call Bash (toolu_0)" in md and "tool result for toolu_0" in md
    assert "guardrails: flagged" in md and "policy: allowed" in md
    assert "secrets/aws-access-key → flag" in md
    assert "$0.0123" in md and "ttfb 420 ms" in md and "claude-sonnet-4-5" in md
    assert "tools offered: Bash" in md
    assert md.count("Answer 0 about deploy") == 1
    document = orjson.loads(render(transcript, "json"))
    assert document["requests"] == 3 and document["cost_micros"] == 12_345 * 3 + 3
    assert document["turns"][0]["findings"] == [FINDING]
    assert document["turns"][1]["prompt"][1]["block"]["text"].startswith("refund")
    page = render(transcript, "html")
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.startswith("<!doctype html>") and "flagged" in page


async def test_an_encrypted_store_reads_back_with_the_keyring(db: Database, tmp_path: Path) -> None:
    key_file = tmp_path / "audit.keys"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
    keyring = Keyring.load(key_file)
    await populate(db, keyring)
    stored = await db.fetch_all(sa.text("SELECT key_id FROM audit_blocks"), "read")
    assert {row["key_id"] for row in stored} == {keyring.current}
    assert "deploy with key" in render(await rebuild(db, SESSION_A, keyring), "md")
    locked = render(await rebuild(db, SESSION_A), "md")
    assert "deploy with key" not in locked and "no audit key file" in locked


async def test_an_unknown_session_is_not_found(db: Database) -> None:
    with pytest.raises(NotFound):
        await rebuild(db, "no-such-session")


async def test_investigate_goes_from_an_event_to_everything_and_is_recorded(
    db: Database,
) -> None:
    event = await populate(db)
    found = await investigate(db, event.id, actor="sec@example.com", via="test")
    assert found.record_id == f"gh_{SESSION_A[-4:]}_000"
    assert found.session == SESSION_A and found.developer == ADA
    assert found.transcript is not None and len(found.transcript.turns) == 3
    assert [e.id for e in found.session_events] == [event.id]
    assert [s["session"] for s in found.developer_sessions] == [SESSION_A]
    assert found.developer_sessions[0]["guarded"] == 1
    assert found.elapsed_ms < 2000
    assert "◀ investigated" in render(found.transcript, "md", highlight=found.record_id)
    recorded = await db.query_events(kind=INVESTIGATED)
    assert [(e.detail["actor"], e.detail["subject"]) for e in recorded] == [
        ("sec@example.com", event.id)
    ]
    admin = await db.fetch_all(
        sa.text("SELECT actor, action FROM audit_records WHERE kind = 'admin'"), "read"
    )
    assert [(r["actor"], r["action"]) for r in admin] == [("sec@example.com", INVESTIGATED)]
    by_request = await investigate(db, found.record_id, actor="sec@example.com", via="test")
    assert by_request.session == SESSION_A and by_request.event is None
    with pytest.raises(NotFound):
        await investigate(db, "nothing-like-this", actor="sec@example.com", via="test")


# -- the CLI --------------------------------------------------------------------------


@pytest.fixture
def cli_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Event:
    for name in ("GATEHOUSE_CONFIG", "GATEHOUSE_DATABASE_URL", "GATEHOUSE_AUDIT_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEHOUSE_DATA_DIR", str(tmp_path / "data"))

    async def go() -> Event:
        db = await Database.open(Settings.load().resolved_database_url)
        try:
            return await populate(db)
        finally:
            await db.close()

    return asyncio.run(go())


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, ["audit", *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def test_cli_search_transcript_and_investigate(cli_store: Event, tmp_path: Path) -> None:
    found = orjson.loads(run("search", "invoice", "--developer", ADA, "--json").stdout)
    assert [h["session"] for h in found["hits"]] == [SESSION_A]
    table = run("search", "invoice", "--repository", SEARCH_REPO, "--by", "sec").stdout
    assert "ranking" in table and "refund" not in table
    assert "nothing to search for" in run("search", '"*"', code=2).stderr
    assert "24h or 7d" in run("search", "x", "--since", "yesterday", code=2).stderr
    assert "guardrail verdict" in run("search", "x", "--guard", "purple", code=2).stderr
    md = run("transcript", SESSION_A).stdout
    assert "refund the duplicate invoice" in md and "guardrails: flagged" in md
    page = tmp_path / "t.html"
    run("transcript", SESSION_A, "--format", "html", "--output", str(page))
    assert "&lt;script&gt;" in page.read_text()
    assert "md, json or html" in run("transcript", SESSION_A, "--format", "pdf", code=2).stderr
    assert "no audited session" in run("transcript", "nope", code=2).stderr
    report = run("investigate", cli_store.id, "--by", "sec@example.com").stdout
    assert "# Investigation of" in report and f"session: {SESSION_A}" in report
    assert "◀ investigated" in report
    document = orjson.loads(run("investigate", cli_store.id, "--format", "json").stdout)
    assert document["developer"] == ADA and document["transcript"]["requests"] == 3
    assert "no event or audited request" in run("investigate", "nope", code=2).stderr
