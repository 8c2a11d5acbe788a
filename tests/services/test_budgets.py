"""Budgets over real storage: the store on SQLite and PostgreSQL, spend shared through Redis."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from redis.asyncio import Redis

from gatehouse.ledger.budgets import Budget, BudgetExceeded, BudgetException, periods_at
from gatehouse.ledger.enforcement import BudgetService
from gatehouse.ledger.usage import UsageRecord
from gatehouse.store.budgets import BudgetStore
from gatehouse.store.db import Database
from gatehouse.store.errors import StoreConflict
from gatehouse.store.redis_spend import announce_budget_change, redis_key
from tests.services.conftest import TcpProxy

USD = 1_000_000


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    db = await Database.open(database_url)
    yield db
    await db.close()


def charge(team: str, cost: int) -> UsageRecord:
    return UsageRecord(developer="dev@example.com", team=team, cost_micros=cost)


async def eventually(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def paused(service: BudgetService, team: str) -> bool:
    try:
        service.guard.check("dev@example.com", team, "", time.time())
    except BudgetExceeded:
        return True
    return False


# -- the store, on SQLite and PostgreSQL -------------------------------------------------


async def test_budgets_round_trip_and_every_change_bumps_the_revision(db: Database) -> None:
    store = BudgetStore(db)
    assert await store.revision() == 0
    first = await store.put(Budget("team", "payments", 100 * USD, updated_by="em@example.com"))
    assert await store.revision() == 1
    changed = await store.put(
        Budget("team", "payments", 200 * USD, daily_micros=USD, soft_permille=700)
    )
    assert changed.id == first.id  # same scope and name: the same budget
    assert await store.get("team", "payments") == changed
    now = time.time()
    live = BudgetException(first.id, 5 * USD, now + 60, "launch", "em@example.com", created_at=now)
    expired = BudgetException(first.id, USD, now - 1, "old", "em@example.com", created_at=now - 9)
    await store.grant(live)
    await store.grant(expired)
    assert await store.revision() == 4
    budgets, exceptions = await store.load(now)
    assert budgets == [changed]
    assert exceptions == [live]
    with pytest.raises(StoreConflict):
        await store.grant(live)
    assert await store.remove("team", "payments") == changed
    assert await store.remove("team", "payments") is None
    assert await store.load(now) == ([], [])


async def test_spend_is_summed_per_owner_and_period(db: Database) -> None:
    periods = periods_at(time.time())
    inside, before = periods.day_start + 10, periods.month_start - 10
    await db.insert_usage(
        [
            UsageRecord(team="payments", developer="a@x", ts=inside, cost_micros=5),
            UsageRecord(team="payments", developer="b@x", ts=inside, cost_micros=7),
            UsageRecord(team="payments", developer="b@x", ts=inside, cost_micros=None),
            UsageRecord(team="search", developer="b@x", ts=inside, cost_micros=11),
            UsageRecord(team="payments", developer="a@x", ts=before, cost_micros=1000),
        ]
    )
    store = BudgetStore(db)
    month = await store.spend("team", periods.month_start, periods.month_end)
    assert month == {"payments": 12, "search": 11}
    assert await store.spend("developer", periods.month_start, periods.month_end, ["b@x"]) == {
        "b@x": 18
    }


async def test_an_alert_is_claimed_once(db: Database) -> None:
    store = BudgetStore(db)
    assert await store.claim_alert("b1", "2026-11", "soft", USD, 800_000) is True
    assert await store.claim_alert("b1", "2026-11", "soft", USD, 900_000) is False
    assert await store.claim_alert("b1", "2026-11", "hard", USD, 1_100_000) is True
    # A raised limit re-arms the alert; a new period too.
    assert await store.claim_alert("b1", "2026-11", "soft", 2 * USD, 1_600_000) is True
    assert await store.claim_alert("b1", "2026-12", "soft", USD, 800_000) is True
    assert len(await store.alerts("2026-11")) == 3


async def test_without_redis_spend_comes_from_the_database(db: Database) -> None:
    team = f"t{uuid.uuid4().hex[:8]}"
    await BudgetStore(db).put(Budget("team", team, USD))
    await db.insert_usage([UsageRecord(team=team, cost_micros=2 * USD)])
    service = BudgetService(db, refresh_interval=0.05)
    await service.start()
    try:
        assert paused(service, team)  # learnt at start, before serving anything
    finally:
        await service.close()


# -- replicas sharing Redis ---------------------------------------------------------------


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, socket_timeout=1.0, socket_connect_timeout=1.0)
    yield client
    await client.aclose()


@pytest.fixture
async def sqlite_db(tmp_path) -> AsyncIterator[Database]:  # type: ignore[no-untyped-def]
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'gatehouse.db'}")
    yield db
    await db.close()


@pytest.fixture
async def replicas(
    sqlite_db: Database, redis: Redis
) -> AsyncIterator[Callable[..., BudgetService]]:
    started: list[BudgetService] = []

    def make(interval: float = 3600.0) -> BudgetService:
        service = BudgetService(sqlite_db, redis=redis, refresh_interval=interval)
        started.append(service)
        return service

    yield make
    for service in started:
        await service.close()


@pytest.mark.redis
async def test_replicas_share_spend_and_pause_together(
    sqlite_db: Database, redis: Redis, replicas: Callable[..., BudgetService]
) -> None:
    team = f"t{uuid.uuid4().hex[:8]}"
    await BudgetStore(sqlite_db).put(Budget("team", team, 10 * USD))
    # An hour between reads: only increments and the pause announcement can move B.
    a, b = replicas(), replicas()
    await a.start()
    await b.start()
    key = ("team", team, periods_at(time.time()).month)

    async def shared_total() -> int:
        return int(await redis.get(redis_key(key)) or 0)

    a.guard.charge(charge(team, 6 * USD))
    deadline = time.monotonic() + 5
    while await shared_total() != 6 * USD:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    b.guard.charge(charge(team, 4 * USD))
    # B's increment returns the global total: A's 6 included.
    await eventually(lambda: b.guard.spend(key) == 10 * USD)
    assert not paused(a, team) and not paused(b, team)
    a.guard.charge(charge(team, USD))  # 11 of 10: A's increment crosses 110%
    await eventually(lambda: paused(a, team))
    await eventually(lambda: paused(b, team), timeout=2.0)
    assert await shared_total() == 11 * USD


@pytest.mark.redis
async def test_a_missing_counter_is_seeded_from_the_database(
    sqlite_db: Database, redis: Redis, replicas: Callable[..., BudgetService]
) -> None:
    team = f"t{uuid.uuid4().hex[:8]}"
    month = periods_at(time.time()).month
    await BudgetStore(sqlite_db).put(Budget("team", team, 10 * USD))
    await sqlite_db.insert_usage([UsageRecord(team=team, cost_micros=7 * USD)])
    await redis.delete(redis_key(("team", team, month)))  # Redis restarted, say
    a = replicas()
    await a.start()
    assert a.guard.spend(("team", team, month)) == 7 * USD
    assert int(await redis.get(redis_key(("team", team, month)))) == 7 * USD
    assert 0 < await redis.ttl(redis_key(("team", team, month))) <= 40 * 86400
    a.guard.charge(charge(team, 5 * USD))
    await eventually(lambda: paused(a, team))


@pytest.mark.redis
async def test_budget_changes_are_announced_to_running_replicas(
    sqlite_db: Database, redis_url: str, replicas: Callable[..., BudgetService]
) -> None:
    team = f"t{uuid.uuid4().hex[:8]}"
    a = replicas()
    await a.start()
    await asyncio.sleep(0)  # let it subscribe
    budget = await BudgetStore(sqlite_db).put(Budget("team", team, USD))
    a.guard.charge(charge(team, 2 * USD))  # no budget known yet: nothing counted
    await announce_budget_change(redis_url, "test")
    await eventually(lambda: a.guard.count == 1)
    a.guard.charge(charge(team, 2 * USD))
    await eventually(lambda: paused(a, team))
    grant = BudgetException(budget.id, 10 * USD, time.time() + 60, "launch", "em@example.com")
    await BudgetStore(sqlite_db).grant(grant)
    await announce_budget_change(redis_url, "test")
    await eventually(lambda: not paused(a, team))


@pytest.mark.redis
async def test_without_redis_the_replica_counts_locally_and_says_so(
    sqlite_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    spent, fresh = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    for team in (spent, fresh):
        await BudgetStore(sqlite_db).put(Budget("team", team, USD))
    await sqlite_db.insert_usage([UsageRecord(team=spent, cost_micros=2 * USD)])
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    service = BudgetService(sqlite_db, redis=unreachable, refresh_interval=3600)
    caplog.set_level(logging.WARNING)
    await service.start()
    try:
        assert "counting this replica's charges locally" in caplog.text
        assert paused(service, spent)  # the database's sum, while Redis is away
        assert not paused(service, fresh)
        service.guard.charge(charge(fresh, 2 * USD))
        assert paused(service, fresh)  # this replica's own charges
    finally:
        await service.close()
        await unreachable.aclose()


@pytest.mark.redis
async def test_charges_made_while_redis_was_away_reach_it_when_it_is_back(
    sqlite_db: Database, redis_url: str
) -> None:
    team = f"t{uuid.uuid4().hex[:8]}"
    key = ("team", team, periods_at(time.time()).month)
    await BudgetStore(sqlite_db).put(Budget("team", team, 100 * USD))
    target = Redis.from_url(redis_url)
    host = target.connection_pool.connection_kwargs
    link = TcpProxy(host.get("host", "127.0.0.1"), host.get("port", 6379))
    await link.start()
    through = Redis(host="127.0.0.1", port=link.port, socket_timeout=1.0, retry=None)
    service = BudgetService(sqlite_db, redis=through, refresh_interval=0.05, redis_retry_after=0.1)
    await service.start()

    async def stored() -> int:
        return int(await target.get(redis_key(key)) or 0)

    try:
        service.guard.charge(charge(team, 2 * USD))
        await eventually_async(stored, 2 * USD)
        await link.cut()
        service.guard.charge(charge(team, 3 * USD))  # Redis is away: counted here
        assert service.guard.spend(key) == 5 * USD
        await link.start()
        await eventually_async(stored, 5 * USD)
    finally:
        await service.close()
        await through.aclose()
        await target.aclose()
        await link.cut()


async def eventually_async(read: Callable[[], Awaitable[int]], expected: int) -> None:
    deadline = time.monotonic() + 5
    while (value := await read()) != expected:
        assert time.monotonic() < deadline, f"{value} != {expected}"
        await asyncio.sleep(0.02)
