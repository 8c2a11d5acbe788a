"""The rate-limit counter shared by every replica through Redis."""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gatehouse.policy.ratelimit import MemoryCounter

log = logging.getLogger("gatehouse.store")


class RedisCounter:
    """Counts in Redis; while Redis is unreachable, counts locally rather than refuse traffic.

    A rate limit protects the upstream budget, not a security boundary, so an
    outage of the shared counter degrades to per-replica limits instead of
    failing requests.
    """

    PREFIX = "gatehouse:ratelimit:"

    def __init__(self, redis: Redis, *, retry_after: float = 5.0) -> None:
        self._redis = redis
        self._fallback = MemoryCounter()
        self._retry_after = retry_after
        self._down_until = 0.0

    async def hit(self, key: str, window: int, now: float) -> int:
        if time.monotonic() < self._down_until:
            # Redis failed a moment ago: don't make every request wait to find out again.
            return await self._fallback.hit(key, window, now)
        name = self.PREFIX + key
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window + 1)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("rate-limit counter in Redis unreachable, counting locally: %s", exc)
            self._down_until = time.monotonic() + self._retry_after
            return await self._fallback.hit(key, window, now)
        return int(count)
