"""The audit store against a real SQLite file (and PostgreSQL when one is configured)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from gatehouse.audit import retention
from gatehouse.audit.capture import AuditCapture, ResponseAssembler
from gatehouse.audit.chain import DAY, seal_days, verify
from gatehouse.audit.crypto import Keyring, new_key_line, plaintext
from gatehouse.audit.records import record_hash
from gatehouse.audit.store import admin_entry, write_audit
from gatehouse.content import blocks
from gatehouse.events import Event
from gatehouse.identity.principal import ApiKey
from gatehouse.ledger.recorder import DatabaseSink, Recorder
from gatehouse.store.db import Database
from gatehouse.store.policy import PolicyStore
from gatehouse.store.schema import audit_blocks, audit_deletions, audit_records
from gatehouse.store.spool import Spool, SpoolDrainer
from tests.services.conftest import fresh_postgres_database

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
SYSTEM = "You are Claude Code, shared by every session. " * 40


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'gatehouse.db'}")
        yield database
        await database.close()
        return
    admin_url: str = request.getfixturevalue("postgres_url")
    async with fresh_postgres_database(admin_url) as url:
        database = await Database.open(url)
        yield database
        await database.close()


def request_body(turn: int, tag: str) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [{"type": "text", "text": f"{tag}: fix the flaky test tag{tag}"}],
        }
    ]
    for i in range(1, turn):
        messages += [
            {"role": "assistant", "content": [{"type": "text", "text": f"{tag} step {i}"}]},
            {"role": "user", "content": [{"type": "text", "text": f"{tag} result {i} zebra{i}"}]},
        ]
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "messages": messages,
    }


def sse_reply(text: str) -> bytes:
    events = [
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "content_block_stop", "index": 0},
    ]
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)


def session(
    capture: AuditCapture,
    tag: str,
    turns: int,
    *,
    ts: float = T0,
    developer: str = "dev@acme.com",
    **kw: Any,
) -> list[dict[str, Any]]:
    entries = []
    for turn in range(1, turns + 1):
        assembler = ResponseAssembler()
        assembler.feed(sse_reply(f"{tag} step {turn}"))
        entry = capture.entry(
            request_id=f"gh_{tag}_{turn}",
            ts=ts + turn,
            parsed=request_body(turn, tag),
            response=assembler.blocks(),
            developer=developer,
            session_id=f"sess-{tag}",
            **kw,
        )
        capture.spooled(entry)
        entries.append(entry)
    return entries


async def scalar(db: Database, sql: str, **params: Any) -> Any:
    rows = await db.fetch_all(sa.text(sql).bindparams(**params), "test query")
    return next(iter(rows[0].values()))


async def search(db: Database, word: str) -> list[str]:
    """Which blocks' search text holds ``word`` (SQLite: their FTS rowids, from the digest)."""
    if db.dialect == "postgresql":
        sql = "SELECT digest AS hit FROM audit_text WHERE tsv @@ plainto_tsquery('simple', :w)"
    else:
        sql = "SELECT rowid AS hit FROM audit_text WHERE audit_text MATCH :w"
    return [str(r["hit"]) for r in await db.fetch_all(sa.text(sql).bindparams(w=word), "search")]


async def test_a_session_is_stored_once_per_block_and_redelivery_adds_nothing(db: Database) -> None:
    entries = session(AuditCapture(), "a", 6)
    await write_audit(db, entries[:3])
    await write_audit(db, entries)  # the first three again, as after a crash before the checkpoint
    await write_audit(db, entries)
    every = {b.digest for n in range(1, 7) for b in blocks(request_body(n, "a"))}
    assert await scalar(db, "SELECT count(*) FROM audit_records") == 6
    # the requests' blocks, and the sixth reply (the others come back as the next turn)
    assert await scalar(db, "SELECT count(*) FROM audit_blocks") == len(every) + 1
    seqs = await db.fetch_all(
        sa.select(audit_records.c.seq, audit_records.c.base_id).order_by(audit_records.c.seq), "q"
    )
    assert [r["seq"] for r in seqs] == [1, 2, 3, 4, 5, 6]
    assert [r["base_id"] for r in seqs][1:] == [f"gh_a_{n}" for n in range(1, 6)]
    assert len(await search(db, "zebra3")) == 1
    assert await verify(db) == []


async def test_two_writers_racing_on_one_chain_keep_it_whole(db: Database, tmp_path: Path) -> None:
    other = await Database.open(
        db.url if db.dialect == "sqlite" else db._url.render_as_string(False)
    )
    try:
        capture = AuditCapture()
        entries = session(capture, "r", 12)
        await asyncio.gather(
            *(write_audit(d, [e]) for d, e in zip([db, other] * 6, entries, strict=True))
        )
    finally:
        await other.close()
    assert await scalar(db, "SELECT count(*) FROM audit_records") == 12
    assert await scalar(db, "SELECT max(seq) FROM audit_records") == 12
    assert await verify(db) == []


async def test_verify_names_altered_inserted_and_deleted_records_and_tampered_blocks(
    db: Database,
) -> None:
    await write_audit(db, session(AuditCapture(), "v", 6))
    await write_audit(db, session(AuditCapture(), "w", 3, ts=T0 + 100))
    assert await seal_days(db, T0 + 3 * DAY) == ["2026-01-01"]
    assert await verify(db) == []

    await db.execute(
        audit_records.update().where(audit_records.c.id == "gh_v_2").values(model="other"), "tamper"
    )
    problems = await verify(db)
    assert [(p.kind, p.record_id) for p in problems] == [("altered", "gh_v_2")]

    # Delete the head of chain w: only the sealed root can tell.
    await db.execute(audit_records.delete().where(audit_records.c.id == "gh_w_3"), "tamper")
    problems = await verify(db)
    assert ("deleted", "sess-w", 3) in [(p.kind, p.chain, p.seq) for p in problems]

    # Delete a middle record of chain v.
    await db.execute(audit_records.delete().where(audit_records.c.id == "gh_v_4"), "tamper")
    assert ("deleted", "gh_v_5") in [(p.kind, p.record_id) for p in await verify(db)]

    # Insert a well-formed record after v's head, dated in the sealed day.
    head = (
        await db.fetch_all(sa.select(audit_records).where(audit_records.c.id == "gh_v_6"), "q")
    )[0]
    fake = dict(head) | {"id": "gh_fake", "seq": 7, "prev_hash": head["hash"], "ts": T0 + 50}
    fake["hash"] = record_hash(fake["prev_hash"], fake)
    await db.execute(audit_records.insert().values(fake), "tamper")
    assert ("inserted", "sess-v") in [(p.kind, p.chain) for p in await verify(db)]

    # Alter a block's content.
    digest = blocks(request_body(1, "v"))[-1].digest
    await db.execute(
        audit_blocks.update().where(audit_blocks.c.digest == digest).values(content=b'{"x":1}'),
        "tamper",
    )
    assert ("block", digest) in [(p.kind, p.digest) for p in await verify(db)]


async def test_retention_holds_and_gc_sweep_only_unreferenced_blocks(db: Database) -> None:
    capture = AuditCapture()
    await write_audit(db, session(capture, "old", 3, repository="github.com/acme/api"))
    await write_audit(db, session(capture, "held", 3, developer="suspect@acme.com"))
    await write_audit(db, session(capture, "short", 2, repository="github.com/acme/tmp"))
    await write_audit(db, session(capture, "new", 2, ts=T0 + 20 * DAY))
    hold = await retention.place_hold(
        db, "developer", "suspect@acme.com", reason="case 42", actor="legal@acme.com"
    )
    await retention.set_retention(
        db, "repository", "github.com/acme/api", 10, actor="sec@acme.com", reason="policy"
    )
    await retention.set_retention(db, "repository", "github.com/acme/tmp", 1, actor="sec@acme.com")
    shared = blocks(request_body(1, "x"))[0].digest  # the system prompt every session sends
    only_old = blocks(request_body(2, "old"))[-1].digest

    report = await retention.gc(db, T0 + 5 * DAY, default_days=30)
    assert report.deleted_chains == ["sess-short"]
    report = await retention.gc(db, T0 + 15 * DAY, default_days=30)
    assert report.deleted_chains == ["sess-old"]
    stored = {r["digest"] for r in await db.fetch_all(sa.select(audit_blocks.c.digest), "q")}
    assert shared in stored
    assert only_old not in stored
    assert await search(db, "tagheld") != []
    assert await search(db, "tagold") == []
    deletion = (
        await db.fetch_all(
            sa.select(audit_deletions).where(audit_deletions.c.chain == "sess-old"), "q"
        )
    )[0]
    assert (deletion["records"], deletion["through_seq"]) == (3, 3)
    assert deletion["blocks"] > 0
    actions = [
        r["action"]
        for r in await db.fetch_all(
            sa.select(audit_records.c.action)
            .where(audit_records.c.kind == "admin")
            .order_by(audit_records.c.seq),
            "q",
        )
    ]
    assert actions == [
        "audit_hold_placed",
        "audit_retention_set",
        "audit_retention_set",
        "audit_deleted",
        "audit_deleted",
    ]
    assert await verify(db) == []

    # Past retention, the held session stays until released; then it goes too.
    report = await retention.gc(db, T0 + 40 * DAY, default_days=30)
    assert (report.deleted_chains, report.held) == ([], 1)
    assert await retention.release_hold(db, hold.id, actor="legal@acme.com", reason="closed")
    assert not await retention.release_hold(db, hold.id, actor="legal@acme.com")
    report = await retention.gc(db, T0 + 40 * DAY, default_days=30)
    assert report.deleted_chains == ["sess-held"]
    await write_audit(db, session(AuditCapture(), "old", 1, ts=T0 + 41 * DAY))
    assert await scalar(db, "SELECT seq FROM audit_records WHERE id = 'gh_old_1'") == 4
    assert await verify(db) == []


async def test_zero_days_keeps_forever_as_default_and_as_override(db: Database) -> None:
    capture = AuditCapture()
    await write_audit(db, session(capture, "api", 1, repository="github.com/acme/api"))
    await write_audit(db, session(capture, "tmp", 1, repository="github.com/acme/tmp"))
    await write_audit(db, session(capture, "other", 1, repository="github.com/acme/other"))
    later = T0 + 10_000 * DAY
    assert (await retention.gc(db, later, default_days=0)).deleted_chains == []
    await retention.set_retention(db, "repository", "github.com/acme/tmp", 1, actor="sec@acme")
    assert (await retention.gc(db, later, default_days=0)).deleted_chains == ["sess-tmp"]
    await retention.set_retention(db, "repository", "github.com/acme/api", 0, actor="sec@acme")
    assert (await retention.gc(db, later, default_days=30)).deleted_chains == ["sess-other"]
    assert await retention.retention_overrides(db) == {
        ("repository", "github.com/acme/api"): 0,
        ("repository", "github.com/acme/tmp"): 1,
    }
    with pytest.raises(ValueError, match="keep forever"):
        await retention.set_retention(db, "team", "x", -1, actor="sec@acme")
    assert await verify(db) == []


async def test_block_contents_are_encrypted_at_rest(db: Database, tmp_path: Path) -> None:
    (tmp_path / "keys").write_text(new_key_line() + "\n")
    keyring = Keyring.load(tmp_path / "keys")
    await write_audit(db, session(AuditCapture(), "enc", 2), keyring=keyring)
    rows = await db.fetch_all(sa.select(audit_blocks), "q")
    assert rows and all(r["key_id"] in (keyring.current, f"z:{keyring.current}") for r in rows)
    assert not any(b"fix the flaky test" in bytes(r["content"]) for r in rows)
    assert not any(b"Claude Code" in bytes(r["content"]) for r in rows)
    texts = {plaintext(r["digest"], r["key_id"], r["content"], keyring) for r in rows}
    assert any(b"enc: fix the flaky test" in t for t in texts)
    assert await verify(db, keyring=keyring) == []
    assert {p.kind for p in await verify(db)} == {"block"}  # without the key: unverifiable


async def test_admin_actions_are_chained_with_who_and_why_and_searchable(db: Database) -> None:
    await PolicyStore(db).change(
        lambda p: p.replace(mode="observe"),
        author="sec@acme.com",
        reason="pilot week",
        source="api",
    )
    key = ApiKey(
        id="gh_k1",
        digest="d" * 64,
        email="dev@acme.com",
        team="web",
        roles=("developer",),
        created_at=T0,
    )
    await db.insert_key(key, actor="admin@acme.com", reason="onboarding")
    assert await db.revoke_key("gh_k1", T0 + 1, actor="admin@acme.com", reason="left")
    event = Event(kind="budget_changed", subject="budget set", detail={"by": "fin@acme.com"})
    await db.insert_events([event])
    await db.insert_events([event, Event(kind="unknown_model_price", subject="not admin")])
    await write_audit(
        db, [admin_entry("killswitch_thrown", actor="sec@acme.com", reason="incident", ts=T0)]
    )
    rows = await db.fetch_all(
        sa.select(audit_records)
        .where(audit_records.c.chain == "admin")
        .order_by(audit_records.c.seq),
        "q",
    )
    assert [(r["action"], r["actor"]) for r in rows] == [
        ("policy_changed", "sec@acme.com"),
        ("key_created", "admin@acme.com"),
        ("key_revoked", "admin@acme.com"),
        ("budget_changed", "fin@acme.com"),
        ("killswitch_thrown", "sec@acme.com"),
    ]
    assert rows[0]["reason"] == "pilot week"
    assert rows[2]["developer"] == "dev@acme.com"
    assert "d" * 64 not in orjson.dumps([{str(k): v for k, v in r.items()} for r in rows]).decode()
    assert len(await search(db, "pilot")) == 1
    assert await verify(db) == []


async def test_the_recorder_spools_audit_entries_and_the_sink_stores_them(
    db: Database, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool")
    await spool.open()
    drainer = SpoolDrainer(spool, DatabaseSink(db))
    await drainer.start()
    try:
        recorder = Recorder(spool)
        capture = AuditCapture()
        for entry in session(capture, "sp", 3):
            await recorder.audit(entry)
        await recorder.event(Event(kind="model_approved", subject="ok", detail={"author": "sec@x"}))
        await drainer.flush()
    finally:
        await drainer.close()
        await spool.close()
    assert await scalar(db, "SELECT count(*) FROM audit_records WHERE session_id = 'sess-sp'") == 3
    assert (
        await scalar(db, "SELECT actor FROM audit_records WHERE action = 'model_approved'")
        == "sec@x"
    )
    assert await verify(db) == []
