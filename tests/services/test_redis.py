"""Redis shared state: rate limits across replicas, key changes announced at once."""

from __future__ import annotations

import asyncio
import dataclasses
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gatehouse.errors import RateLimited
from gatehouse.identity.keys import announce_key_change
from gatehouse.policy.ratelimit import RateLimit, RateLimiter
from gatehouse.store.redis_counter import RedisCounter
from tests.conftest import running_gateway

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


async def test_replicas_share_one_rate_limit(redis: Redis) -> None:
    developer = f"{uuid.uuid4().hex}@example.com"
    limit = RateLimit(3, 60)
    replica_a = RateLimiter(limit, RedisCounter(redis))
    replica_b = RateLimiter(limit, RedisCounter(redis))
    now = time.time()
    await replica_a.check(developer, now=now)
    await replica_b.check(developer, now=now)
    await replica_a.check(developer, now=now)
    with pytest.raises(RateLimited):
        await replica_b.check(developer, now=now)


async def test_counter_falls_back_to_local_counting_without_redis() -> None:
    unreachable = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=None)
    limiter = RateLimiter(RateLimit(1, 60), RedisCounter(unreachable))
    await limiter.check("ada@example.com", now=100.0)
    with pytest.raises(RateLimited):
        await limiter.check("ada@example.com", now=101.0)
    await unreachable.aclose()


async def test_revocation_is_announced_to_running_gateways(
    settings,  # type: ignore[no-untyped-def]
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A poll interval of an hour: only the Redis announcement can make this pass.
    slow_poll = dataclasses.replace(settings, redis_url=redis_url, key_refresh_interval=3600.0)
    async with running_gateway(slow_poll) as gw:
        key = await gw.key()
        request = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
        ok = await gw.client.post("/v1/messages", json=request, headers={"x-api-key": key})
        assert ok.status_code == 200
        # Stay idle past the Redis client's 1 s socket timeout: a quiet channel must not
        # be taken for a lost one.
        await asyncio.sleep(1.5)
        key_id = key.split("_")[1]
        assert await gw.db.revoke_key(key_id, time.time())
        await announce_key_change(redis_url, key_id)
        deadline = time.monotonic() + 5
        while True:
            refused = await gw.client.post("/v1/messages", json=request, headers={"x-api-key": key})
            if refused.status_code == 401 or time.monotonic() > deadline:
                break
        assert refused.status_code == 401
        assert "revoked" in refused.json()["error"]["message"]
    assert not [r for r in caplog.records if "channel lost" in r.getMessage()]
