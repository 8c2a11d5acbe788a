"""One team budget enforced by two `gatehouse serve` replicas over PostgreSQL and Redis.

Requests are driven through both replicas at once until the budget pauses; then
both must refuse, and what was spent past the hard threshold must be bounded by
the requests that were in flight.  The last test runs the real Claude Code CLI
against a paused budget: one attempt, and the developer reads why.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
from redis import Redis
from sqlalchemy.engine import make_url

from gatehouse.ledger.budgets import periods_at
from gatehouse.settings import normalize_database_url
from gatehouse.store.redis_spend import redis_key
from tests.e2e.conftest import GatewayProcess
from tests.e2e.test_claude_code import (  # noqa: F401 - fixtures
    REFUSAL_BUDGET_S,
    Workspace,
    claude_bin,
    records,
    workspace,
)

pytestmark = pytest.mark.e2e

MakeGateway = Callable[..., GatewayProcess]
MODEL = "claude-sonnet-4-5"  # $3 / $15 per million input / output tokens
OUTPUT_TOKENS = 2000  # about $0.03 a request
HARD_MICROS = 1_100_000  # a $1 budget pauses at 110%
IN_FLIGHT_PER_REPLICA = 4


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for both replicas; dropped afterwards."""
    url = make_url(normalize_database_url(postgres_url))
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"gatehouse_e2e_{uuid.uuid4().hex[:16]}"

    async def run(statement: str) -> None:
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.postgres
@pytest.mark.redis
def test_two_replicas_pause_one_team_budget_together(
    make_gateway: MakeGateway, postgres_database: str, redis_url: str
) -> None:
    team = f"team-{uuid.uuid4().hex[:8]}"
    shared = {"database_url": postgres_database, "redis_url": redis_url}
    a, b = make_gateway(**shared), make_gateway(**shared)
    key = a.new_key("dev@example.com", team)
    a.cli("budget", "set", "--team", team, "--monthly", "1", "--by", "em@example.com")
    a.start()
    b.start()
    try:
        outcomes = asyncio.run(drive([a.url, b.url], key))
        # Both replicas refuse now, whichever the next request lands on.
        for gw in (a, b):
            refused = httpx.post(
                gw.url + "/v1/messages", json=body(), headers={"x-api-key": key}, timeout=10
            )
            assert refused.status_code == 429, refused.text
            assert refused.headers["x-should-retry"] == "false"
            message = refused.json()["error"]["message"]
            assert f"team {team}" in message and "$1.00 monthly budget" in message
        served = [o for o in outcomes if o[1] == 200]
        assert {url for url, _ in served} == {a.url, b.url}, "both replicas served"
        assert {url for url, status in outcomes if status == 429} == {a.url, b.url}
        rows = team_records(a, len(outcomes) + 2)
        spent = sum(int(r["cost_micros"] or 0) for r in rows)
        largest = max(int(r["cost_micros"] or 0) for r in rows)
        in_flight = 2 * IN_FLIGHT_PER_REPLICA
        overshoot = spent - HARD_MICROS
        print(
            f"\n{len(served)} requests served ({largest} µ$ at most each) before the pause; "
            f"spent {spent} µ$ against a hard limit of {HARD_MICROS}: overshoot {overshoot} µ$ "
            f"= {overshoot / largest:.2f} requests; bound {in_flight} in flight"
        )
        assert spent >= HARD_MICROS  # it did reach the pause
        # What crossed the hard limit, plus the other requests in flight then (at most
        # in_flight - 1): under in_flight requests' worth.  One more is allowed for a
        # request another replica admitted in the millisecond before the pause
        # announcement reached it (measured runs: 6.4 to 7.4).
        assert overshoot < (in_flight + 1) * largest
        # Redis holds exactly what the ledger holds: nothing lost, nothing counted twice.
        month = periods_at(float(rows[0]["ts"])).month
        with contextlib.closing(Redis.from_url(redis_url)) as redis:
            assert int(redis.get(redis_key(("team", team, month))) or 0) == spent
            redis.delete(redis_key(("team", team, month)))
    finally:
        a.stop()
        b.stop()


def body(output_tokens: int = 16) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": output_tokens,
        "stream": True,
        "messages": [{"role": "user", "content": "spend the team budget"}],
    }


async def drive(urls: list[str], key: str) -> list[tuple[str, int]]:
    """Keep IN_FLIGHT_PER_REPLICA requests going to each replica until each is refused."""
    outcomes: list[tuple[str, int]] = []
    headers = {
        "x-api-key": key,
        "x-sim-output-tokens": str(OUTPUT_TOKENS),
        "x-sim-delay-ms": "2",  # a stream lasts a while: requests overlap for real
    }

    async def worker(client: httpx.AsyncClient, url: str) -> None:
        for _ in range(500):
            async with client.stream(
                "POST", url + "/v1/messages", json=body(OUTPUT_TOKENS), headers=headers
            ) as response:
                await response.aread()
            outcomes.append((url, response.status_code))
            if response.status_code == 429:
                return
            assert response.status_code == 200, response.text
        raise AssertionError("the budget never paused")

    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(
            *(worker(client, url) for url in urls for _ in range(IN_FLIGHT_PER_REPLICA))
        )
    return outcomes


def team_records(gw: GatewayProcess, count: int) -> list[dict[str, Any]]:
    """Every record of both replicas, once ``count`` reached the shared database."""
    return records(gw, count)


@pytest.mark.claude
def test_claude_code_stops_at_a_paused_budget_after_one_attempt(
    workspace: Workspace,  # noqa: F811 - the fixture imported above
    make_gateway: MakeGateway,
) -> None:
    """A paused budget is a 429 with ``x-should-retry: false``: Claude Code makes one
    attempt and shows the developer whose budget it is and how to ask for more."""
    gw = make_gateway()
    key = gw.new_key("dev@example.com", "payments")
    gw.cli("budget", "set", "--team", "payments", "--monthly", "0.01")
    gw.start()
    primer = httpx.post(
        gw.url + "/v1/messages",
        json=body(OUTPUT_TOKENS),
        headers={"x-api-key": key, "x-sim-output-tokens": str(OUTPUT_TOKENS)},
        timeout=30,
    )
    assert primer.status_code == 200  # about $0.03 of a $0.01 budget: paused
    env = workspace.env(ANTHROPIC_BASE_URL=gw.url, ANTHROPIC_AUTH_TOKEN=key)
    run = workspace.run("Say hello to Gatehouse.", env=env, timeout=REFUSAL_BUDGET_S)
    result = run.result
    assert run.returncode == 1
    assert result["is_error"] is True
    assert result["api_error_status"] == 429
    assert "Budget paused: team payments" in result["result"]
    assert "gatehouse budget exception --team payments" in result["result"]
    attempts = records(gw, 2)[1:]
    assert [(r["status"], r["error_type"]) for r in attempts] == [(429, "rate_limit_error")]
    assert run.seconds < REFUSAL_BUDGET_S
