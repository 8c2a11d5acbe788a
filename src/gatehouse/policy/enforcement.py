"""PolicyService: keeps the in-memory `PolicySnapshot` current on every replica.

The snapshot is rebuilt when the ``policy`` revision moves (polled every
``refresh_interval``) and at once when a change is announced on Redis
(``gatehouse:policy``): a kill switch thrown on one replica reaches every
replica within a second.  If the database is away the last snapshot stays in
force.  The proxy reads `snapshot` on every request without awaiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis

from gatehouse.policy.decide import PolicySnapshot
from gatehouse.policy.document import Policy
from gatehouse.store import channels
from gatehouse.store.policy import POLICY_CHANNEL, PolicyStore

log = logging.getLogger("gatehouse.policy")


class PolicyService:
    """The policy snapshot and the tasks keeping it current."""

    def __init__(
        self,
        store: PolicyStore,
        *,
        env_models: tuple[str, ...] = (),
        force_observe: bool = False,
        refresh_interval: float = 1.0,
    ) -> None:
        self.store = store
        self._env_models = env_models
        self._force_observe = force_observe
        self._interval = refresh_interval
        # Until the first load: enforce, nothing approved — fail closed.
        self.snapshot = self._build(Policy(), -1)
        self._revision = -1
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()

    def _build(self, policy: Policy, version: int) -> PolicySnapshot:
        return PolicySnapshot(
            policy,
            version=version,
            env_models=self._env_models,
            force_observe=self._force_observe,
        )

    async def start(self) -> None:
        await self.refresh(force=True)
        poll = channels.poll(self.refresh, self._interval, "policy")
        self._tasks.append(asyncio.create_task(poll, name="gatehouse-policy-refresh"))

    def follow(self, redis: Redis) -> None:
        """Also reload as soon as another process announces a policy change."""

        async def reload(channel: str, data: bytes) -> None:
            await self.refresh()

        listen = channels.follow(
            redis, (POLICY_CHANNEL,), reload, catch_up=self.refresh, what="policy"
        )
        self._tasks.append(asyncio.create_task(listen, name="gatehouse-policy"))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def refresh(self, *, force: bool = False) -> None:
        """Rebuild the snapshot if the ``policy`` revision moved."""
        async with self._lock:
            revision = await self.store.revision()
            if revision == self._revision and not force:
                return
            version, policy = await self.store.current()
            self.snapshot = self._build(policy, version)
            if self._revision >= 0:
                log.info("policy version %d in force", version)
            self._revision = revision
