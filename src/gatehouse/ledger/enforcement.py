"""`BudgetService`: keeps a `BudgetGuard` current across replicas and sends its alerts.

The guard answers every request from memory; this service does the I/O around
it, in background tasks, so a slow database or Redis never delays a request:

- **Definitions**: the snapshot of budgets and live exceptions is reloaded when
  the ``budgets`` revision in the database moves (polled every refresh
  interval) or at once when ``gatehouse budget …`` announces a change on Redis.
- **Spend, with Redis**: charges are sent as they happen (INCRBY, batched by
  whatever accumulated while the previous send was in flight) and the reply is
  the global total.  An increment that crosses a hard threshold is announced on
  a channel, so every replica pauses at once; every refresh interval the totals
  are read back, for replicas that are idle.  If Redis fails, charges are
  counted locally (and sent once it is back) and a warning is logged: requests
  are never refused because of Redis.
- **Spend, without Redis**: the database's sum of ``cost_micros`` for the
  period, read at start and every refresh interval, merged with what this
  process charged since (`BudgetGuard.absorb`).
- **Alerts**: each threshold the guard reports is claimed in ``budget_alerts``
  (a conflict means another replica has it), recorded as an event through the
  spool and posted to the webhook, with retries, in a task of its own.

So the overshoot past a hard threshold is bounded by the requests already in
flight when the pause is known, plus those admitted during one round trip to
Redis; without Redis, by one refresh interval and the spool's drain delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Iterable

from redis.asyncio import Redis

from gatehouse.errors import GatewayError
from gatehouse.ledger.alerts import WebhookSender, alert_event, subject, webhook_payload
from gatehouse.ledger.budgets import period_bounds
from gatehouse.ledger.guard import Alert, BudgetGuard, SpendKey
from gatehouse.ledger.recorder import Recorder
from gatehouse.store import channels
from gatehouse.store.budgets import BudgetStore
from gatehouse.store.db import Database
from gatehouse.store.errors import StoreError
from gatehouse.store.redis_spend import RedisSpend, follow_budget_channels

log = logging.getLogger("gatehouse.ledger")

# Past this many names a spend sum reads the whole group rather than an IN list.
_IN_LIST_LIMIT = 500
_CLAIM_ATTEMPTS = 3


class BudgetService:
    """Owns the process's `BudgetGuard` (``.guard``), which the proxy checks and charges."""

    def __init__(
        self,
        db: Database,
        recorder: Recorder | None = None,
        *,
        redis: Redis | None = None,
        webhook_url: str = "",
        refresh_interval: float = 1.0,
        webhooks: WebhookSender | None = None,
        redis_retry_after: float = 5.0,
    ) -> None:
        self._store = BudgetStore(db)
        self._recorder = recorder
        self._redis = redis
        self._shared = RedisSpend(redis) if redis is not None else None
        self._webhook_url = webhook_url
        self._interval = refresh_interval
        self._webhooks = webhooks or WebhookSender()
        self._wake = asyncio.Event()
        self.guard = BudgetGuard(
            on_alert=self._on_alert, on_charge=self._wake.set if redis is not None else None
        )
        self._revision = -1
        self._lock = asyncio.Lock()
        self._read_due = True
        self._redis_down_until = 0.0
        # After a Redis failure, how long to count locally before trying it again.
        self._redis_retry_after = redis_retry_after
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._deliveries: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Load the snapshot and the spend so far, then keep both current in the background."""
        await self._webhooks.start()
        await self.refresh(force=True)
        await self._sync(time.time())
        refresh = channels.poll(
            self.refresh, self._interval, "budget", stopping=lambda: self._closing
        )
        self._tasks.append(asyncio.create_task(refresh, name="gatehouse-budget-refresh"))
        self._tasks.append(asyncio.create_task(self._sync_loop(), name="gatehouse-budget-spend"))
        if self._redis is not None:
            follow = follow_budget_channels(
                self._redis, self._announced, self._announced_spend, lambda: self._closing
            )
            self._tasks.append(asyncio.create_task(follow, name="gatehouse-budget-channels"))

    async def close(self) -> None:
        # The loops also stop on this flag: redis-py can swallow a cancellation that
        # lands while a command is in flight, and a swallowed one would hang here.
        self._closing = True
        self._wake.set()
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5.0)
        for task in self._tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                log.error("budget task %s failed: %r", task.get_name(), task.exception())
        self._tasks.clear()
        if self._shared is not None:
            # Hand the last charges to the other replicas; give up quickly.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._flush(time.time())
        if self._deliveries:
            _, late = await asyncio.wait(self._deliveries, timeout=2.0)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        await self._webhooks.close()

    async def refresh(self, *, force: bool = False) -> None:
        """Reload budgets and exceptions if the database's revision moved."""
        async with self._lock:
            revision = await self._store.revision()
            now = time.time()
            if revision == self._revision and not force:
                self.guard.tick(now)
                return
            before = set(self.guard.wanted())
            budgets, exceptions = await self._store.load(now)
            self.guard.load(budgets, exceptions, now)
            self._revision = revision
        if not set(self.guard.wanted()) <= before:
            self._read_due = True  # a new budget or period: learn its spend now
            self._wake.set()

    # -- background loops -----------------------------------------------------

    async def _sync_loop(self) -> None:
        next_read = time.monotonic() + self._interval
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_read - time.monotonic())):
                    await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            if time.monotonic() >= next_read:
                self._read_due = True
                next_read = time.monotonic() + self._interval
            try:
                await self._sync(time.time())
            except Exception:  # a bug: keep enforcing what is known, say so
                log.exception("budget spend sync failed")

    async def _sync(self, now: float) -> None:
        if self._shared is None:
            if self._read_due:
                self._read_due = False
                await self._read_database(now)
            return
        if time.monotonic() < self._redis_down_until:
            # Counting locally meanwhile (the charges wait in the guard), with the
            # database's sums as a floor so a restarted replica still knows the spend.
            if self._read_due:
                self._read_due = False
                await self._read_database(now, floor=True)
            return
        await self._flush(now)
        if self._read_due:
            self._read_due = False
            await self._read_redis(now)

    async def _flush(self, now: float) -> None:
        """Send the charges made since the last send; apply the totals Redis returns."""
        assert self._shared is not None
        deltas = self.guard.take_pending()
        if not deltas:
            return
        try:
            totals = await self._shared.add(deltas)
        except StoreError as exc:
            # Sent again later; if part of the pipeline was applied that counts twice,
            # which pauses a little early rather than late.
            for key, delta in deltas.items():
                self.guard.unsend(key, delta)
            self._redis_failed(exc)
            return
        self._redis_works()
        missing = [key for key, total in totals.items() if total is None]
        if missing:
            try:
                seeds = await self._stored_spend(missing)
                totals.update(
                    await self._shared.seed_and_add(seeds, {k: deltas[k] for k in missing})
                )
            except StoreError as exc:
                for key in missing:
                    self.guard.unsend(key, deltas.pop(key))
                    totals.pop(key)
                log.warning("cannot seed budget spend in Redis, retrying: %s", exc.message)
        for key, total in totals.items():
            assert total is not None
            if self.guard.settle(key, deltas[key], total, now):
                await self._announce_pause(key, total)

    async def _read_redis(self, now: float) -> None:
        assert self._shared is not None
        wanted = self.guard.wanted()
        if not wanted:
            return
        try:
            totals = await self._shared.read(wanted)
            missing = [key for key, total in totals.items() if total is None]
            if missing:
                seeds = await self._stored_spend(missing)
                totals.update(await self._shared.seed_and_add(seeds, {}))
        except StoreError as exc:
            self._redis_failed(exc)
            await self._read_database(now, floor=True)
            return
        self._redis_works()
        for key, total in totals.items():
            if total is not None:
                self.guard.observe(key, total, now)

    async def _read_database(self, now: float, *, floor: bool = False) -> None:
        """Spend from the database's sums: merged (no Redis), or as a floor (Redis away)."""
        wanted = self.guard.wanted()
        if not wanted:
            return
        try:
            stored = await self._stored_spend(wanted)
        except StoreError as exc:
            self._read_due = True
            log.warning("cannot read budget spend from the database: %s", exc.message)
            return
        for key in wanted:
            if floor:
                # May count a charge both here and in what waits for Redis: early, not late.
                self.guard.raise_floor(key, stored.get(key, 0), now)
            else:
                self.guard.absorb(key, stored.get(key, 0), now)

    async def _stored_spend(self, keys: Iterable[SpendKey]) -> dict[SpendKey, int]:
        """The database's spend for each key: one grouped sum per scope and period."""
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for scope, name, period in keys:
            groups[(scope, period)].append(name)
        out: dict[SpendKey, int] = {}
        for (scope, period), names in groups.items():
            start, end = period_bounds(period)
            sums = await self._store.spend(
                scope, start, end, names if len(names) <= _IN_LIST_LIMIT else None
            )
            out.update(((scope, name, period), sums.get(name, 0)) for name in names)
        return out

    def _redis_failed(self, exc: StoreError) -> None:
        if self._redis_down_until == 0.0:
            log.warning(
                "budget spend in Redis unreachable, counting this replica's charges locally: %s",
                exc.message,
            )
        self._redis_down_until = time.monotonic() + self._redis_retry_after

    def _redis_works(self) -> None:
        if self._redis_down_until:
            log.info("budget spend in Redis reachable again; local charges sent")
            self._redis_down_until = 0.0

    async def _announce_pause(self, key: SpendKey, total: int) -> None:
        assert self._shared is not None
        try:
            await self._shared.announce(key, total)
        except StoreError as exc:
            self._redis_failed(exc)

    async def _announced(self) -> None:
        await self.refresh()

    def _announced_spend(self, key: SpendKey, total: int) -> None:
        self.guard.raise_floor(key, total, time.time())

    # -- alerts ---------------------------------------------------------------

    def _on_alert(self, alert: Alert) -> None:
        task = asyncio.create_task(self._deliver(alert), name="gatehouse-budget-alert")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, alert: Alert) -> None:
        """Claim the alert (once per threshold, period and limit), record it, post it."""
        limit = alert.limit
        for attempt in range(_CLAIM_ATTEMPTS):
            try:
                claimed = await self._store.claim_alert(
                    alert.budget.id, limit.period, alert.level, limit.micros, alert.spend_micros
                )
                break
            except StoreError as exc:
                if attempt == _CLAIM_ATTEMPTS - 1:
                    log.warning("cannot claim budget alert, will retry later: %s", exc.message)
                    self.guard.forget_alert(alert)  # reported again at the next assessment
                    return
                await asyncio.sleep(0.5 * 2**attempt)
        if not claimed:
            return  # another replica (or an earlier run) sent it
        log.warning("%s", subject(alert))
        if self._recorder is not None:
            try:
                await self._recorder.event(alert_event(alert))
            except GatewayError as exc:
                log.error("cannot record budget alert event: %s", exc.message)
        url = alert.budget.webhook_url or self._webhook_url
        if url:
            await self._webhooks.send(url, webhook_payload(alert))
