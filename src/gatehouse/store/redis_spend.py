"""Budget spend shared by every replica through Redis, and the budget channels.

One integer key per ``(scope, name, period)`` holds the micro-dollars every
replica has charged: ``gatehouse:spend:2026-11:team:payments``.  A replica adds
its charges with INCRBY and learns the global total from the reply.

Redis runs without persistence, so a key may be missing (a restart, a new
period, a new budget).  Increments go through a script that only adds to a key
that exists; a missing key is first seeded from the database's sum with
``SET NX`` (the first replica to seed wins, the others add to its value) and
given an expiry past its period.

Two channels: ``gatehouse:budgets`` says "definitions changed, reload" (the
CLI publishes there), and ``gatehouse:budgets:spend`` carries a total that
crossed a hard threshold, so every replica pauses at once rather than at its
next read.  Redis errors become `StoreError`; the caller decides to count
locally meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from gatehouse.store import channels
from gatehouse.store.errors import StoreError

log = logging.getLogger("gatehouse.store")

SpendKey = tuple[str, str, str]  # (scope, name, period), as gatehouse.ledger.guard has it

BUDGETS_CHANNEL = "gatehouse:budgets"
SPEND_CHANNEL = "gatehouse:budgets:spend"
_PREFIX = "gatehouse:spend:"
# Kept a little past their period, for a late charge and for people looking.
_TTL_MONTH = 40 * 86400
_TTL_DAY = 3 * 86400
_READ_CHUNK = 1000

# Add to a key only if it exists: a missing key must be seeded from the database
# first, or a Redis restart would start every budget again from zero.
_INCR_IF_EXISTS = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return redis.call('INCRBY', KEYS[1], ARGV[1])
end
return false
"""


def redis_key(key: SpendKey) -> str:
    scope, name, period = key
    # The name goes last: it is the only part that may hold a colon.
    return f"{_PREFIX}{period}:{scope}:{name}"


def _ttl(period: str) -> int:
    return _TTL_DAY if len(period) > 7 else _TTL_MONTH


class RedisSpend:
    """Spend totals in Redis.  Every method raises `StoreError` when Redis fails."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._incr = redis.register_script(_INCR_IF_EXISTS)

    async def add(self, deltas: Mapping[SpendKey, int]) -> dict[SpendKey, int | None]:
        """Add each delta; the new totals, None for a key that must be seeded first."""
        keys = list(deltas)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    await self._incr(keys=[redis_key(key)], args=[deltas[key]], client=pipe)
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreError(f"cannot add budget spend in Redis: {exc}") from exc
        return {key: None if r is None else int(r) for key, r in zip(keys, replies, strict=True)}

    async def seed_and_add(
        self, seeds: Mapping[SpendKey, int], deltas: Mapping[SpendKey, int]
    ) -> dict[SpendKey, int]:
        """Seed missing keys (``SET NX``: another replica's seed wins) and add the deltas."""
        keys = list(seeds)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    name = redis_key(key)
                    pipe.set(name, seeds[key], nx=True, ex=_ttl(key[2]))
                    pipe.incrby(name, deltas.get(key, 0))
                replies = await pipe.execute()
        except (RedisError, OSError) as exc:
            raise StoreError(f"cannot seed budget spend in Redis: {exc}") from exc
        return {key: int(replies[2 * i + 1]) for i, key in enumerate(keys)}

    async def read(self, keys: Iterable[SpendKey]) -> dict[SpendKey, int | None]:
        """Current totals; None for a key Redis does not hold."""
        wanted = list(keys)
        out: dict[SpendKey, int | None] = {}
        try:
            for start in range(0, len(wanted), _READ_CHUNK):
                chunk = wanted[start : start + _READ_CHUNK]
                values = await self._redis.mget([redis_key(key) for key in chunk])
                out.update(
                    (key, None if v is None else int(v))
                    for key, v in zip(chunk, values, strict=True)
                )
        except (RedisError, OSError) as exc:
            raise StoreError(f"cannot read budget spend from Redis: {exc}") from exc
        return out

    async def announce(self, key: SpendKey, total: int) -> None:
        """Tell every replica that ``key`` reached ``total`` (a hard threshold was crossed)."""
        message = orjson.dumps({"key": list(key), "total": total})
        try:
            await self._redis.publish(SPEND_CHANNEL, message)
        except (RedisError, OSError) as exc:
            raise StoreError(f"cannot announce the budget pause on Redis: {exc}") from exc


async def follow_budget_channels(
    redis: Redis,
    on_change: Callable[[], Awaitable[None]],
    on_spend: Callable[[SpendKey, int], None],
    stopping: Callable[[], bool] = lambda: False,
) -> None:
    """Listen until cancelled or ``stopping()``: reload on ``gatehouse:budgets``, apply totals.

    Redis being away only slows things down to the poll; after a reconnection
    ``on_change`` runs once to catch up on what was announced meanwhile.
    """

    async def on_message(channel: str, data: bytes) -> None:
        if channel != SPEND_CHANNEL:
            await on_change()
            return
        announced = _announced(data)
        if announced is not None:
            on_spend(*announced)

    await channels.follow(
        redis,
        (BUDGETS_CHANNEL, SPEND_CHANNEL),
        on_message,
        catch_up=on_change,
        what="budget",
        stopping=stopping,
    )


def _announced(data: bytes) -> tuple[SpendKey, int] | None:
    try:
        parsed = orjson.loads(data)
        scope, name, period = (str(part) for part in parsed["key"])
        return (scope, name, period), int(parsed["total"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        log.warning("ignoring a malformed budget spend announcement: %r", data[:200])
        return None


async def announce_budget_change(redis_url: str, what: str) -> None:
    """Tell running gateways that budgets changed (best effort: they also poll)."""
    await channels.announce(redis_url, BUDGETS_CHANNEL, what, "budget")
