"""Budgets through the in-process gateway: the pause, exceptions, alerts on a real webhook."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from gatehouse.cli.processes import free_port
from gatehouse.ledger.alerts import BUDGET_HARD_PAUSE, BUDGET_SOFT_ALERT
from gatehouse.ledger.budgets import Budget, BudgetException
from gatehouse.settings import Settings
from gatehouse.store.budgets import BudgetStore
from tests.conftest import Gateway, running_gateway

MODEL = "claude-sonnet-4-5"  # $3 / $15 per million input / output tokens
USD = 1_000_000


def request(output_tokens: int, *, stream: bool = False) -> dict[str, object]:
    return {
        "model": MODEL,
        "max_tokens": output_tokens,
        "stream": stream,
        "messages": [{"role": "user", "content": "spend some budget"}],
    }


def spend(output_tokens: int) -> dict[str, str]:
    """Headers making the simulator answer with about ``output_tokens`` tokens ($15/M)."""
    return {"x-sim-output-tokens": str(output_tokens)}


class Webhook:
    """A real HTTP server on a local port that keeps what it receives."""

    def __init__(self) -> None:
        self.received: list[dict[str, object]] = []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/services/T000/B000/secret-token"

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.Response(text="ok")

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"webhook got {len(self.received)} of {count}"
            await asyncio.sleep(0.02)


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook()
    app = web.Application()
    app.router.add_post("/services/T000/B000/secret-token", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", hook.port).start()
    yield hook
    await runner.cleanup()


async def set_budget(gw: Gateway, budget: Budget) -> Budget:
    stored = await BudgetStore(gw.db).put(budget)
    await gw.app.state.services.budgets.refresh()  # type: ignore[attr-defined]
    return stored


def budget_settings(settings: Settings, **changes: object) -> Settings:
    return dataclasses.replace(settings, budget_refresh_interval=0.05, **changes)  # type: ignore[arg-type]


async def test_a_paused_budget_is_429_that_claude_code_does_not_retry(settings: Settings) -> None:
    async with running_gateway(budget_settings(settings)) as gw:
        key = await gw.key(team="payments")
        headers = {"x-api-key": key}
        await set_budget(gw, Budget(scope="team", name="payments", monthly_micros=10_000))  # $0.01
        first = await gw.client.post(
            "/v1/messages", json=request(2000), headers={**headers, **spend(2000)}
        )
        assert first.status_code == 200  # admitted under the limit; it costs about $0.03
        for stream in (False, True):
            refused = await gw.client.post(
                "/v1/messages", json=request(10, stream=stream), headers=headers
            )
            assert refused.status_code == 429
            assert refused.headers["x-should-retry"] == "false"
            assert refused.headers["content-type"] == "application/json"
            body = refused.json()
            assert body["type"] == "error"
            assert body["error"]["type"] == "rate_limit_error"
            message = body["error"]["message"]
            assert "team payments" in message
            assert "$0.01 monthly budget" in message
            assert "gatehouse budget exception --team payments" in message
        # Counting tokens costs nothing: never refused.
        counted = await gw.client.post(
            "/v1/messages/count_tokens",
            json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
            headers=headers,
        )
        assert counted.status_code == 200
        # Another team is not affected.
        other = await gw.key(email="eve@example.com", team="search")
        ok = await gw.client.post("/v1/messages", json=request(10), headers={"x-api-key": other})
        assert ok.status_code == 200
        records = await gw.usage(5)
        assert [r.status for r in records] == [200, 429, 429, 200, 200]
        assert records[0].cost_micros is not None and records[0].cost_micros > 11_000
        assert records[1].error_type == "rate_limit_error"


async def test_an_exception_lifts_the_pause_until_it_is_spent(settings: Settings) -> None:
    async with running_gateway(budget_settings(settings)) as gw:
        key = await gw.key(team="payments")
        headers = {"x-api-key": key}
        budget = await set_budget(
            gw, Budget(scope="developer", name="dev@example.com", monthly_micros=10_000)
        )
        await gw.client.post("/v1/messages", json=request(2000), headers={**headers, **spend(2000)})
        refused = await gw.client.post("/v1/messages", json=request(10), headers=headers)
        assert refused.status_code == 429
        assert "developer dev@example.com" in refused.json()["error"]["message"]
        grant = BudgetException(budget.id, USD, time.time() + 3600, "demo day", "em@example.com")
        await BudgetStore(gw.db).grant(grant)
        # The poll picks the change up (no Redis here): wait for it, with a deadline.
        deadline = time.monotonic() + 5
        while True:
            again = await gw.client.post("/v1/messages", json=request(10), headers=headers)
            if again.status_code == 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.02)
        assert again.status_code == 200


async def test_a_restarted_gateway_remembers_the_spend(settings: Settings) -> None:
    quick = budget_settings(settings)
    async with running_gateway(quick) as gw:
        key = await gw.key(team="payments")
        await set_budget(gw, Budget(scope="team", name="payments", monthly_micros=10_000))
        await gw.client.post(
            "/v1/messages", json=request(2000), headers={"x-api-key": key, **spend(2000)}
        )
        await gw.usage(1)  # in the database before the restart
    async with running_gateway(quick) as gw:
        refused = await gw.client.post("/v1/messages", json=request(10), headers={"x-api-key": key})
        assert refused.status_code == 429


async def test_alerts_reach_the_webhook_once_per_threshold(
    settings: Settings, webhook: Webhook
) -> None:
    quick = budget_settings(settings, alert_webhook_url=webhook.url)
    async with running_gateway(quick) as gw:
        key = await gw.key(team="payments")
        headers = {"x-api-key": key}
        await set_budget(gw, Budget(scope="team", name="payments", monthly_micros=USD))
        # $0.825 of $1: past the soft threshold (80%), short of the hard one (110%).
        first = await gw.client.post(
            "/v1/messages", json=request(55_000), headers={**headers, **spend(55_000)}
        )
        assert first.status_code == 200
        for _ in range(3):  # more spend, still under 110%: no second soft alert
            ok = await gw.client.post(
                "/v1/messages", json=request(1000), headers={**headers, **spend(1000)}
            )
            assert ok.status_code == 200
        await webhook.wait_for(1)
        await gw.usage(4)
    # A second gateway on the same database finds the budget past 80% at start and
    # reports it too — the claim in the database makes it a no-op. Closing it waits
    # for its alert deliveries.
    async with running_gateway(quick) as gw:
        await gw.usage(0)
        [event] = await gw.db.query_events(kind=BUDGET_SOFT_ALERT)
    assert len(webhook.received) == 1
    [payload] = webhook.received
    assert "team payments" in str(payload["text"])
    assert "$1.00 monthly budget" in str(payload["text"])
    blocks = payload["blocks"]
    assert isinstance(blocks, list)
    assert blocks[0]["type"] == "header"
    assert "gatehouse budget exception --team payments" in str(blocks)
    assert event.team == "payments"
    assert event.severity == "warning"
    assert event.detail["period"] == time.strftime("%Y-%m", time.gmtime())
    assert event.detail["limit_micros"] == USD
    assert event.detail["spend_micros"] >= 825_000


async def test_the_hard_pause_is_an_event_and_a_webhook(
    settings: Settings, webhook: Webhook
) -> None:
    async with running_gateway(budget_settings(settings)) as gw:
        key = await gw.key(team="payments")
        # The budget's own webhook, not the global one (there is none here).
        await set_budget(
            gw,
            Budget(scope="team", name="payments", monthly_micros=10_000, webhook_url=webhook.url),
        )
        await gw.client.post(
            "/v1/messages", json=request(2000), headers={"x-api-key": key, **spend(2000)}
        )
        await webhook.wait_for(2)  # soft and hard: one request crossed both
        await gw.usage(1)
        events = await gw.db.query_events()
    texts = sorted(str(p["text"]) for p in webhook.received)
    assert any("Budget paused" in t for t in texts)
    assert any("Budget alert" in t for t in texts)
    kinds = sorted(e.kind for e in events if e.kind.startswith("budget_"))
    assert kinds == [BUDGET_HARD_PAUSE, BUDGET_SOFT_ALERT]
    [paused] = [e for e in events if e.kind == BUDGET_HARD_PAUSE]
    assert paused.severity == "critical"


async def test_an_unreachable_webhook_does_not_touch_requests(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hooks/very-secret-path"
    async with running_gateway(budget_settings(settings, alert_webhook_url=dead)) as gw:
        key = await gw.key(team="payments")
        await set_budget(gw, Budget(scope="team", name="payments", monthly_micros=USD))
        started = time.monotonic()
        ok = await gw.client.post(
            "/v1/messages", json=request(60_000), headers={"x-api-key": key, **spend(60_000)}
        )
        assert ok.status_code == 200
        assert time.monotonic() - started < 2.0
    assert "very-secret-path" not in caplog.text
    assert "http://127.0.0.1" in caplog.text  # the failure is logged, its path masked
