"""`gatehouse login`, `whoami` and `logout` as a developer runs them, against `gatehouse serve`."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import GatewayProcess
from tests.oidc.conftest import Browser, Provider

pytestmark = [pytest.mark.oidc, pytest.mark.e2e]


@pytest.fixture
def sso_gateway_process(
    tmp_path: Path, sim_url: str, oidc_provider: Provider, e2e_port: int
) -> Iterator[GatewayProcess]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
    env.update(
        GATEHOUSE_DATA_DIR=str(tmp_path / "data"),
        GATEHOUSE_UPSTREAM_URL=sim_url,
        GATEHOUSE_SECRET_KEY="e2e-secret",
        GATEHOUSE_PUBLIC_URL=f"http://127.0.0.1:{e2e_port}",
        GATEHOUSE_OIDC_ISSUER=oidc_provider.issuer,
        GATEHOUSE_OIDC_CLIENT_ID=oidc_provider.client_id,
        GATEHOUSE_OIDC_CLIENT_SECRET=oidc_provider.client_secret,
        GATEHOUSE_ROLE_GROUPS="finance=gh-finance",
    )
    gw = GatewayProcess(env=env, port=e2e_port, log=tmp_path / "gateway.log")
    gw.start()
    yield gw
    gw.stop()


async def test_a_developer_logs_in_checks_who_they_are_and_logs_out(
    sso_gateway_process: GatewayProcess, tmp_path: Path
) -> None:
    gw = sso_gateway_process
    env = {**gw.env, "XDG_CONFIG_HOME": str(tmp_path / "laptop")}
    cli = [sys.executable, "-m", "gatehouse"]
    login = subprocess.Popen(
        [*cli, "login", "--gateway", gw.url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert login.stderr is not None
        first = login.stderr.readline()
        second = login.stderr.readline()
        assert first.startswith("To sign in, open "), first + second
        url = first.removeprefix("To sign in, open ").strip()
        code = second.split("code ")[1].split()[0]
        assert url == f"{gw.url}/device?user_code={code}"

        browser = Browser()
        try:
            page = await browser.sign_in("ada@example.com", url)
            assert code in page.text, page.text
            approved = await browser.client.post(
                f"{gw.url}/device",
                data={"user_code": code, "action": "approve"},
                headers={"origin": gw.url},
            )
            assert approved.status_code == 200, approved.text
        finally:
            await browser.aclose()
        _, rest = login.communicate(timeout=30)
    finally:
        if login.poll() is None:
            login.kill()
            login.communicate(timeout=10)
    assert login.returncode == 0, rest
    assert "Signed in to" in rest and "ada@example.com" in rest

    stored = tmp_path / "laptop" / "gatehouse" / "credentials.json"
    if '"store": "keyring"' not in stored.read_text():
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        assert "ghr_" in stored.read_text()

    whoami = subprocess.run([*cli, "whoami"], env=env, capture_output=True, text=True, timeout=60)
    assert whoami.returncode == 0, whoami.stderr
    assert whoami.stdout.startswith(f"ada@example.com at {gw.url}")

    logout = subprocess.run([*cli, "logout"], env=env, capture_output=True, text=True, timeout=60)
    assert logout.returncode == 0, logout.stderr
    assert "Signed out." in logout.stderr
    assert not stored.exists()
    after = subprocess.run([*cli, "whoami"], env=env, capture_output=True, text=True, timeout=60)
    assert after.returncode == 1
    assert "gatehouse login" in after.stderr
