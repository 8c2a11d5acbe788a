"""Shared fixtures: a simulator upstream, settings, an in-process gateway, keys, services.

Tests that need PostgreSQL, Redis or real clients skip with a reason on a
laptop without them; in CI (GATEHOUSE_REQUIRE_SERVICES=1) they fail instead.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gatehouse.app import create_app
from gatehouse.cli.processes import free_port, wait_for_port
from gatehouse.identity.keys import load_secret, mint_key
from gatehouse.settings import Settings
from gatehouse.store.db import Database

FIXTURES = Path(__file__).parent / "fixtures"
SCENARIO = FIXTURES / "scenario.yaml"


def require(condition: bool, reason: str) -> None:
    """Skip without a service on a laptop; fail in CI, where every service must be there."""
    if condition:
        return
    if os.environ.get("GATEHOUSE_REQUIRE_SERVICES") == "1":
        pytest.fail(f"required in CI but unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def sim_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`gatehouse sim` in a child process, shared by the session."""
    port = free_port()
    log = tmp_path_factory.mktemp("sim") / "sim.log"
    with log.open("wb") as out:
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gatehouse",
                "sim",
                "--port",
                str(port),
                "--scenario",
                str(SCENARIO),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_port("127.0.0.1", port)
            yield f"http://127.0.0.1:{port}"
        finally:
            child.terminate()
            child.wait(timeout=10)


@pytest.fixture
def policy_mode() -> str:
    """The repository allow-list's mode for the `settings` fixture.

    Most tests are about something else and send requests for repositories no
    policy approved, so they run the allow-list in ``observe`` mode (kill
    switches and the model veto still apply).  Policy tests override this
    fixture to return ``"enforce"`` (the product's default).
    """
    return "observe"


@pytest.fixture
def settings(tmp_path: Path, sim_url: str, policy_mode: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        upstream_url=sim_url,
        key_refresh_interval=0.05,
        policy_refresh_interval=0.05,
        secret_key="test-secret",
        policy_mode=policy_mode,
    )


@dataclass
class Gateway:
    """An in-process gateway: ``client`` talks to it, ``db`` reads what it recorded."""

    client: httpx.AsyncClient
    db: Database
    settings: Settings
    app: object

    async def key(
        self, email: str = "dev@example.com", team: str = "payments", **kw: object
    ) -> str:
        new = mint_key(
            load_secret(self.settings.secret_key, self.settings.data_dir),
            email=email,
            team=team,
            **kw,
        )  # type: ignore[arg-type]
        await self.db.insert_key(new.record)
        await self.app.state.services.proxy.keys.refresh()  # type: ignore[attr-defined]
        return new.secret

    async def usage(self, count: int) -> list:  # type: ignore[type-arg]
        """Wait until ``count`` usage records reached the database (the spool drains them)."""
        drainer = self.app.state.services.drainer  # type: ignore[attr-defined]
        await drainer.flush()
        return list(reversed(await self.db.query_usage(limit=count)))


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[Gateway]:
    """A gateway built from ``settings``, started, with a client talking to it in-process."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services = app.state.services
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gatehouse") as client:
            yield Gateway(client=client, db=services.db, settings=settings, app=app)


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    async with running_gateway(settings) as gw:
        yield gw


@pytest.fixture
def postgres_url() -> str:
    url = os.environ.get("GATEHOUSE_TEST_POSTGRES_URL", "")
    require(bool(url), "set GATEHOUSE_TEST_POSTGRES_URL to run PostgreSQL tests")
    return url


@pytest.fixture
def redis_url() -> str:
    url = os.environ.get("GATEHOUSE_TEST_REDIS_URL", "")
    require(bool(url), "set GATEHOUSE_TEST_REDIS_URL to run Redis tests")
    return url
