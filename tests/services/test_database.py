"""The database layer against real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import create_async_engine

import gatehouse
from gatehouse.events import Event
from gatehouse.identity.principal import ApiKey
from gatehouse.ledger.usage import UsageRecord
from gatehouse.store.db import Database
from gatehouse.store.errors import StoreConflict, StoreError
from gatehouse.store.migrate import alembic_config, head_revision
from gatehouse.store.schema import compared, metadata
from gatehouse.store.spool import Spool, SpoolDrainer
from tests.services.conftest import TcpProxy


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    db = await Database.open(database_url)
    yield db
    await db.close()


def key(n: int, **kw: Any) -> ApiKey:
    fields: dict[str, Any] = {
        "id": f"gh_{n:04d}",
        "digest": f"{n:064x}",
        "email": f"dev{n}@example.com",
        "team": "payments",
        "roles": ("developer",),
        "created_at": 1_700_000_000.0 + n,
    }
    return ApiKey(**(fields | kw))


def usage(n: int, **kw: Any) -> UsageRecord:
    return UsageRecord(id=f"u{n:05d}", ts=1_700_000_000.0 + n, developer="dev@example.com", **kw)


def usage_sink(current: Callable[[], Database], failures: asyncio.Queue[str]) -> Any:
    """A drainer sink storing ``usage`` records in whichever database is current."""

    async def sink(records: list[dict[str, Any]]) -> None:
        try:
            await current().insert_usage([UsageRecord.from_dict(r) for r in records])
        except StoreError as exc:
            failures.put_nowait(str(exc))
            raise

    return sink


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


async def test_migrations_build_the_schema_from_empty(database_url: str) -> None:
    db = await Database.open(database_url)
    assert await db.schema_revision() == head_revision()
    assert head_revision() is not None
    assert await db.keys_revision() == 0
    assert await db.count_usage() == 0
    await db.close()

    def differences(conn: Connection) -> list[Any]:
        context = MigrationContext.configure(conn, opts={"include_name": compared})
        return list(compare_metadata(context, metadata))

    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            assert await conn.run_sync(differences) == []
    finally:
        await engine.dispose()


async def test_reopening_keeps_data_and_migrates_nothing(database_url: str) -> None:
    db = await Database.open(database_url)
    await db.insert_key(key(1))
    await db.close()
    db = await Database.open(database_url)
    assert await db.schema_revision() == head_revision()
    assert [k.id for k in await db.list_keys()] == ["gh_0001"]
    assert await db.keys_revision() == 1
    await db.close()


async def test_replicas_starting_together_all_come_up(database_url: str) -> None:
    replicas = await asyncio.gather(*(Database.open(database_url) for _ in range(4)))
    for replica in replicas:
        assert await replica.schema_revision() == head_revision()
        await replica.close()


async def test_keys_round_trip_and_every_change_bumps_the_revision(db: Database) -> None:
    first = key(1, roles=("developer", "admin"), expires_at=1_800_000_000.0)
    await db.insert_key(first)
    await db.insert_key(key(2, team=""))
    assert await db.list_keys() == [first, key(2, team="")]
    assert await db.keys_revision() == 2

    assert await db.revoke_key("gh_0002", at=1_750_000_000.0) is True
    assert await db.keys_revision() == 3
    assert (await db.list_keys())[1].revoked_at == 1_750_000_000.0
    # Revoking again, or an unknown key, changes nothing.
    assert await db.revoke_key("gh_0002", at=1_760_000_000.0) is False
    assert await db.revoke_key("gh_9999", at=1_760_000_000.0) is False
    assert await db.keys_revision() == 3
    assert (await db.list_keys())[1].revoked_at == 1_750_000_000.0


async def test_a_duplicate_key_is_a_conflict_and_changes_nothing(db: Database) -> None:
    await db.insert_key(key(1))
    with pytest.raises(StoreConflict) as same_id:
        await db.insert_key(key(1, digest="f" * 64))
    with pytest.raises(StoreConflict):
        await db.insert_key(key(2, digest=key(1).digest))
    assert same_id.value.status == 409
    assert await db.keys_revision() == 1
    assert len(await db.list_keys()) == 1


async def test_storing_usage_twice_stores_it_once(db: Database) -> None:
    batch = [usage(n) for n in range(200)]
    await db.insert_usage(batch)
    await db.insert_usage(batch)
    await db.insert_usage([usage(5), usage(5), usage(200)])
    await db.insert_usage([])
    assert await db.count_usage() == 201


async def test_usage_keeps_every_field(db: Database) -> None:
    full = UsageRecord(
        id="full",
        ts=1_700_000_123.456789,
        key_id="gh_0001",
        developer="dev@example.com",
        team="payments",
        repository="github.com/acme/api",
        repository_source="header",
        session_id="5d1c",
        client="claude-cli",
        client_version="2.0.1",
        request_class="main",
        endpoint="/v1/messages",
        model_requested="claude-sonnet-4-6",
        model_served="claude-sonnet-4-6-20260101",
        streamed=True,
        input_tokens=3_000_000_000,
        output_tokens=2,
        cache_creation_input_tokens=3,
        cache_read_input_tokens=4,
        cache_creation_5m_tokens=5,
        cache_creation_1h_tokens=6,
        status=200,
        error_type="",
        stop_reason="end_turn",
        ttfb_ms=12.5,
        duration_ms=345.25,
        upstream_request_id="req_01",
        client_disconnected=True,
        inference_geo="us",
        service_tier="standard",
        speed="standard",
        cost_micros=9_000_000_123,
        cost_centre="CC-1042",
    )
    await db.insert_usage([full, usage(1)])
    assert await db.query_usage() == [full, usage(1)]


async def test_events_are_stored_once_with_their_detail(db: Database) -> None:
    first = Event(
        kind="unknown_model_price",
        subject="model 'x' has no price",
        severity="warning",
        developer="dev@example.com",
        detail={"model": "x", "n": 3},
        ts=1_700_000_000.5,
    )
    second = Event(kind="budget_soft_alert", subject="80% of the budget", ts=1_700_000_001.0)
    await db.insert_events([first, second])
    await db.insert_events([first])  # a replayed spool batch adds nothing
    assert await db.query_events() == [second, first]
    assert await db.query_events(kind="unknown_model_price") == [first]
    assert await db.query_events(since=1_700_000_001.0) == [second]


async def test_upgrading_from_0001_keeps_usage_and_leaves_its_cost_unknown(
    database_url: str,
) -> None:
    """Records stored before chargeback existed are not priced as free."""
    await (await Database.open(database_url, migrate=False)).close()  # creates SQLite's directory
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(lambda sync: command.upgrade(alembic_config(sync), "0001"))
            await conn.execute(
                sa.text(
                    "INSERT INTO usage_records (id, ts, key_id, developer, team, repository, "
                    "repository_source, session_id, client, client_version, request_class, "
                    "endpoint, model_requested, model_served, streamed, input_tokens, "
                    "output_tokens, cache_creation_input_tokens, cache_read_input_tokens, "
                    "cache_creation_5m_tokens, cache_creation_1h_tokens, status, error_type, "
                    "stop_reason, ttfb_ms, duration_ms, upstream_request_id, "
                    "client_disconnected) VALUES ('old', 1.0, '', 'dev@example.com', '', '', "
                    "'', '', '', '', '', '/v1/messages', 'm', 'm', false, 10, 20, 0, 0, 0, 0, "
                    "200, '', 'end_turn', NULL, 5.0, '', false)"
                )
            )
    finally:
        await engine.dispose()
    db = await Database.open(database_url)
    try:
        [old] = await db.query_usage()
        assert (old.id, old.output_tokens, old.cost_micros, old.cost_centre) == (
            "old",
            20,
            None,
            "",
        )
    finally:
        await db.close()


async def test_a_nul_in_text_does_not_make_a_record_unstorable(db: Database) -> None:
    await db.insert_usage([usage(1, model_requested="claude\x00opus")])
    assert [r.model_requested for r in await db.query_usage()] == ["claude\ufffdopus"]


async def test_query_usage_is_newest_first_with_since_and_limit(db: Database) -> None:
    await db.insert_usage([usage(n) for n in (3, 1, 4, 0, 2)])
    assert [r.id for r in await db.query_usage()] == [
        "u00004",
        "u00003",
        "u00002",
        "u00001",
        "u00000",
    ]
    assert [r.id for r in await db.query_usage(limit=2)] == ["u00004", "u00003"]
    since = 1_700_000_002.0
    assert [r.id for r in await db.query_usage(since=since)] == ["u00004", "u00003", "u00002"]
    assert [r.id for r in await db.query_usage(since=since, limit=1)] == ["u00004"]


async def test_an_unreachable_database_is_a_store_error_without_the_password() -> None:
    url = f"postgresql+asyncpg://gatehouse:hunter2-s3cret@127.0.0.1:{closed_port()}/gatehouse"
    with pytest.raises(StoreError) as opening:
        await Database.open(url)
    db = await Database.open(url, migrate=False)
    with pytest.raises(StoreError) as pinging:
        await db.ping()
    await db.close()
    for error in (opening.value, pinging.value):
        assert error.status == 503
        assert "hunter2-s3cret" not in str(error)
        assert "gatehouse:***@127.0.0.1" in str(error)
        assert isinstance(error.__cause__, OSError)


async def test_a_closed_database_is_a_store_error(database_url: str) -> None:
    db = await Database.open(database_url)
    await db.ping()
    await db.close()
    with pytest.raises(StoreError, match="closed"):
        await db.ping()
    with pytest.raises(StoreError, match="closed"):
        await db.insert_usage([usage(1)])


async def test_spooled_usage_lands_in_the_database_and_waits_out_an_outage(
    database_url: str, tmp_path: Path
) -> None:
    current = [await Database.open(database_url)]
    failures: asyncio.Queue[str] = asyncio.Queue()
    spool = Spool(tmp_path / "spool")
    await spool.open()
    drainer = SpoolDrainer(spool, usage_sink(lambda: current[0], failures), max_backoff=0.05)
    await drainer.start()
    async with asyncio.timeout(20):
        for n in range(10):
            await spool.append({"kind": "usage", **usage(n).to_dict()})
        await drainer.flush()
        assert await current[0].count_usage() == 10

        await current[0].close()  # the database goes away
        for n in range(10, 30):
            await spool.append({"kind": "usage", **usage(n).to_dict()})
        assert "closed" in await failures.get()
        assert drainer.backlog == 20
        assert not drainer.healthy

        current[0] = await Database.open(database_url)  # ... and comes back
        await drainer.flush()
    assert await current[0].count_usage() == 30
    assert drainer.healthy
    await drainer.close()
    await spool.close()
    await current[0].close()


@pytest.mark.postgres
async def test_postgres_connections_cut_and_restored(postgres_url: str, tmp_path: Path) -> None:
    from tests.services.conftest import fresh_postgres_database

    async with fresh_postgres_database(postgres_url) as direct_url:
        url = make_url(direct_url)
        proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
        await proxy.start()
        via_proxy = url.set(host="127.0.0.1", port=proxy.port, password="pw-not-shown")
        db = await Database.open(via_proxy.render_as_string(hide_password=False))
        failures: asyncio.Queue[str] = asyncio.Queue()
        spool = Spool(tmp_path / "spool")
        await spool.open()
        drainer = SpoolDrainer(spool, usage_sink(lambda: db, failures), max_backoff=0.05)
        await drainer.start()
        async with asyncio.timeout(20):
            for n in range(10):
                await spool.append({"kind": "usage", **usage(n).to_dict()})
            await drainer.flush()

            await proxy.cut()
            for n in range(10, 20):
                await spool.append({"kind": "usage", **usage(n).to_dict()})
            error = await failures.get()
            assert "pw-not-shown" not in error
            assert drainer.backlog == 10
            with pytest.raises(StoreError):
                await db.ping()

            await proxy.start()
            await drainer.flush()
        assert await db.count_usage() == 20
        await drainer.close()
        await spool.close()
        await db.close()
        await proxy.cut()


CHILD = """
import asyncio, sys
from pathlib import Path
from gatehouse.ledger.usage import UsageRecord
from gatehouse.store.db import Database
from gatehouse.store.spool import Spool, SpoolDrainer

async def main():
    db = await Database.open(sys.argv[2])
    spool = Spool(Path(sys.argv[1]))
    await spool.open()

    async def sink(records):
        await db.insert_usage([UsageRecord.from_dict(r) for r in records])

    drainer = SpoolDrainer(spool, sink)
    await drainer.start()

    async def request(w):
        n = 0
        while True:
            record = UsageRecord(id=f"{w}-{n}", developer="dev@example.com")
            await spool.append({"kind": "usage", **record.to_dict()})
            sys.stdout.write(record.id + "\\n")
            sys.stdout.flush()
            n += 1

    await asyncio.gather(*(request(w) for w in range(16)))

asyncio.run(main())
"""


async def test_no_acknowledged_usage_is_lost_to_kill_9(database_url: str, tmp_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(tmp_path / "spool"),
        database_url,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(gatehouse.__file__).parents[1])},
    )
    assert child.stdout is not None
    acknowledged: list[str] = []
    async with asyncio.timeout(60):
        while len(acknowledged) < 2000:
            line = await child.stdout.readline()
            assert line, "the child process died early"
            acknowledged.append(line.decode().strip())
        child.kill()
        acknowledged += (await child.stdout.read()).decode().split()
        assert await child.wait() == -9

        db = await Database.open(database_url)
        spool = Spool(tmp_path / "spool")
        await spool.open()
        failures: asyncio.Queue[str] = asyncio.Queue()
        drainer = SpoolDrainer(spool, usage_sink(lambda: db, failures))
        await drainer.start()
        await drainer.flush()
    stored = {r.id for r in await db.query_usage(limit=10**6)}
    assert set(acknowledged) <= stored
    await drainer.close()
    await spool.close()
    await db.close()
