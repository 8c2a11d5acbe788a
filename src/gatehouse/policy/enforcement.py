"""PolicyService: keeps the in-memory `PolicySnapshot` current on every replica.

The snapshot is rebuilt when the ``policy`` revision moves (polled every
``refresh_interval``) and at once when a change is announced on Redis
(``gatehouse:policy``): a kill switch thrown on one replica reaches every
replica within a second.  If the database is away the last snapshot stays in
force.  The proxy reads `snapshot` on every request without awaiting.
"""

from __future__ import annotations

import logging

from gatehouse.policy.decide import PolicySnapshot
from gatehouse.policy.document import Policy
from gatehouse.store import channels
from gatehouse.store.policy import POLICY_CHANNEL, PolicyStore

log = logging.getLogger("gatehouse.policy")


class PolicyService(channels.Followed):
    """The policy snapshot and the tasks keeping it current."""

    channel = POLICY_CHANNEL
    what = "policy"

    def __init__(
        self,
        store: PolicyStore,
        *,
        env_models: tuple[str, ...] = (),
        force_observe: bool = False,
        refresh_interval: float = 1.0,
    ) -> None:
        super().__init__(refresh_interval)
        self.store = store
        self._env_models = env_models
        self._force_observe = force_observe
        # Until the first load: enforce, nothing approved — fail closed.
        self.snapshot = self._build(Policy(), -1)

    def _build(self, policy: Policy, version: int) -> PolicySnapshot:
        return PolicySnapshot(
            policy,
            version=version,
            env_models=self._env_models,
            force_observe=self._force_observe,
        )

    async def revision(self) -> int:
        return await self.store.revision()

    async def reload(self) -> None:
        version, policy = await self.store.current()
        self.snapshot = self._build(policy, version)
        if self._revision >= 0:
            log.info("policy version %d in force", version)
