"""Gatehouse as a real process on a real socket, for real clients."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest

from gatehouse.cli.processes import free_port, wait_for_port
from gatehouse.guardrails.engine import Scanner
from gatehouse.guardrails.rules import load_rules


@dataclass
class GatewayProcess:
    """`gatehouse serve` in a child process, and the CLI pointed at the same data."""

    env: dict[str, str]
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    keys: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gatehouse", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_for_port("127.0.0.1", self.port)
        except TimeoutError:
            self.stop()
            raise AssertionError(f"gateway did not start:\n{self.log.read_text()}") from None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no flush — what a crash looks like."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "gatehouse", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    def new_key(self, user: str = "dev@example.com", team: str = "payments") -> str:
        created = orjson.loads(self.cli("keys", "create", "--user", user, "--team", team, "--json"))
        return str(created["key"])

    def usage(self) -> list[dict[str, object]]:
        lines = self.cli("usage", "--since", "1h", "--json").splitlines()
        return [orjson.loads(line) for line in lines]


@pytest.fixture(scope="session")
def compiled_rules(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in guardrail rules compiled once; each gateway's data dir starts with them.

    A gateway keeps its compiled rules in ``<data_dir>/cache``; without this every
    gateway these tests start would compile them again (1.5 s each).
    """
    cache = tmp_path_factory.mktemp("guardrails-cache")
    Scanner(load_rules(), cache_dir=cache)
    return cache


def _seed(data_dir: Path, compiled: Path) -> None:
    shutil.copytree(compiled, data_dir / "cache")


@pytest.fixture
def gateway_process(tmp_path: Path, sim_url: str, compiled_rules: Path) -> Iterator[GatewayProcess]:
    _seed(tmp_path / "data", compiled_rules)
    env = {
        **os.environ,
        "GATEHOUSE_DATA_DIR": str(tmp_path / "data"),
        "GATEHOUSE_UPSTREAM_URL": sim_url,
        "GATEHOUSE_SECRET_KEY": "e2e-secret",
        "GATEHOUSE_KEY_REFRESH_INTERVAL": "0.1",
        # Not a policy test: the allow-list observes (see tests/conftest.py policy_mode).
        "GATEHOUSE_POLICY_MODE": "observe",
    }
    env.pop("GATEHOUSE_DATABASE_URL", None)
    gw = GatewayProcess(env=env, port=free_port(), log=tmp_path / "gateway.log")
    gw.start()
    yield gw
    gw.stop()


@pytest.fixture
def make_gateway(
    tmp_path: Path, sim_url: str, compiled_rules: Path
) -> Iterator[Callable[..., GatewayProcess]]:
    """Gateways with extra settings (``approved_models="claude-sonnet-*"`` sets
    GATEHOUSE_APPROVED_MODELS), not yet started: create keys first, then ``start()``
    — a started gateway has every key in its snapshot.  The allow-list observes
    unless a test passes ``policy_mode="enforce"``."""
    made: list[GatewayProcess] = []

    def make(**settings: str) -> GatewayProcess:
        home = tmp_path / f"gateway-{len(made)}"
        home.mkdir()
        _seed(home / "data", compiled_rules)
        # The machine's own GATEHOUSE_* settings must not change what a test asserts.
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
        env.update(
            GATEHOUSE_DATA_DIR=str(home / "data"),
            GATEHOUSE_UPSTREAM_URL=sim_url,
            GATEHOUSE_SECRET_KEY="e2e-secret",
            GATEHOUSE_KEY_REFRESH_INTERVAL="0.1",
            GATEHOUSE_POLICY_MODE="observe",
        )
        env.update({f"GATEHOUSE_{name.upper()}": value for name, value in settings.items()})
        gw = GatewayProcess(env=env, port=free_port(), log=home / "gateway.log")
        made.append(gw)
        return gw

    yield make
    for gw in made:
        gw.stop()
