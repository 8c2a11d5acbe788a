"""A revoked login reaches a running gateway through Redis, not the next poll."""

from __future__ import annotations

import dataclasses
import time

import pytest

from gatehouse.identity.credentials import (
    announce_identity_change,
    issue_credential,
    revoke_credential,
)
from gatehouse.identity.keys import load_secret
from gatehouse.settings import Settings
from tests.conftest import running_gateway

pytestmark = pytest.mark.redis

MESSAGE = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}


async def test_a_revoked_login_is_announced_to_running_gateways(
    settings: Settings, redis_url: str
) -> None:
    # A poll interval of an hour: only the Redis announcement can make this pass.
    slow_poll = dataclasses.replace(settings, redis_url=redis_url, key_refresh_interval=3600.0)
    async with running_gateway(slow_poll) as gw:
        secret = load_secret(settings.secret_key, settings.data_dir)
        cred_id, credential = await issue_credential(gw.db, "dev@example.com", "test", secret)
        minted = await gw.client.post(
            "/auth/token", json={}, headers={"authorization": f"Bearer {credential}"}
        )
        token = minted.json()["access_token"]
        ok = await gw.client.post("/v1/messages", json=MESSAGE, headers={"x-api-key": token})
        assert ok.status_code == 200
        assert await revoke_credential(gw.db, cred_id)
        started = time.monotonic()
        await announce_identity_change(redis_url, f"credential:{cred_id}")
        while True:
            refused = await gw.client.post(
                "/v1/messages", json=MESSAGE, headers={"x-api-key": token}
            )
            if refused.status_code == 401 or time.monotonic() - started > 5:
                break
        assert refused.status_code == 401
        assert time.monotonic() - started < 1.0
        assert "gatehouse login" in refused.json()["error"]["message"]
