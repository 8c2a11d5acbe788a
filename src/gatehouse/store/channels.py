"""How every in-memory snapshot stays current across replicas: a poll and Redis.

Keys, identity revocations and budgets are each held in memory and checked on
every request.  Each is refreshed the same two ways: a poll of a revision number
in the database (always; it is the guarantee), and, with Redis, an announcement
on a channel that makes every replica refresh at once (only faster).  Redis
being away, at start or later, slows a change down to the poll and is logged
once per outage, not once a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("gatehouse.store")

Refresh = Callable[[], Awaitable[None]]


def _never() -> bool:
    return False


async def poll(
    refresh: Refresh, interval: float, what: str, *, stopping: Callable[[], bool] = _never
) -> None:
    """Call ``refresh`` every ``interval`` seconds until cancelled or ``stopping()``.

    A failing refresh keeps the last snapshot in force: requests go on being
    decided on what was known, and the failure is logged once until it recovers.
    """
    failing = False
    while not stopping():
        await asyncio.sleep(interval)
        try:
            await refresh()
        except Exception as exc:  # noqa: BLE001 - a snapshot poll must outlive any failure
            if not failing:
                log.warning("%s refresh failed, keeping the last snapshot: %s", what, exc)
            failing = True
        else:
            if failing:
                log.info("%s refresh works again", what)
            failing = False


async def follow(
    redis: Redis,
    channels: tuple[str, ...],
    on_message: Callable[[str, bytes], Awaitable[None]],
    *,
    catch_up: Refresh,
    what: str,
    stopping: Callable[[], bool] = _never,
) -> None:
    """Hand every message on ``channels`` to ``on_message(channel, data)`` until stopped.

    ``catch_up`` runs after each (re)subscription, for what was announced while
    this replica was not listening.
    """
    pubsub = redis.pubsub()
    lost = False
    try:
        while not stopping():
            try:
                if not pubsub.subscribed:
                    await pubsub.subscribe(*channels)
                    await catch_up()
                if lost:
                    log.info("%s channel on Redis is back", what)
                    lost = False
                # Bounded waits keep each read inside the client's socket timeout.
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                if message is not None:
                    channel = message["channel"]
                    name = channel.decode() if isinstance(channel, bytes) else str(channel)
                    await on_message(name, message["data"])
            except (RedisError, OSError) as exc:
                if not lost:
                    log.warning("%s channel on Redis lost, polling until it is back: %s", what, exc)
                lost = True
                await pubsub.reset()
                await asyncio.sleep(1.0)
            except Exception as exc:  # noqa: BLE001 - the database may be away during a reload
                log.warning("%s reload after an announcement failed: %s", what, exc)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def announce(redis_url: str, channel: str, message: str, what: str) -> None:
    """Tell running gateways that ``what`` changed (best effort: they also poll)."""
    if not redis_url:
        return
    redis = Redis.from_url(redis_url, socket_connect_timeout=2.0, socket_timeout=2.0)
    try:
        await redis.publish(channel, message)
    except (RedisError, OSError) as exc:
        log.warning("could not announce the %s change on Redis (gateways will poll): %s", what, exc)
    finally:
        await redis.aclose()


class Followed:
    """Base of a snapshot kept current by a revision poll and, with Redis, a channel.

    A subclass names its ``channel`` and ``what`` (for logs), and implements
    `revision` (a number that moves with every change) and `reload` (read the
    snapshot).  `refresh` reloads only when the revision moved; `start` loads
    once and starts the poll; `follow` adds the Redis channel; `close` stops both.
    """

    channel: str
    what: str

    def __init__(self, refresh_interval: float) -> None:
        self._interval = refresh_interval
        self._revision = -1
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()

    async def revision(self) -> int:
        raise NotImplementedError

    async def reload(self) -> None:
        raise NotImplementedError

    async def refresh(self, *, force: bool = False) -> None:
        """Reload the snapshot if the revision moved (always with ``force``)."""
        async with self._lock:
            revision = await self.revision()
            if revision == self._revision and not force:
                return
            await self.reload()
            self._revision = revision

    async def start(self) -> None:
        await self.refresh(force=True)
        refresh = poll(self.refresh, self._interval, self.what)
        self._tasks.append(asyncio.create_task(refresh, name=f"gatehouse-{self.what}-refresh"))

    def follow(self, redis: Redis) -> None:
        """Also reload as soon as another process announces a change on Redis.

        Redis being away (at start or later) only slows a change down to the poll.
        """

        async def reload(channel: str, data: bytes) -> None:
            await self.refresh()

        listen = follow(redis, (self.channel,), reload, catch_up=self.refresh, what=self.what)
        self._tasks.append(asyncio.create_task(listen, name=f"gatehouse-{self.what}-channel"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
