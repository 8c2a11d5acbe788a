"""The real Claude Code with ``apiKeyHelper`` = `gatehouse key-helper`.

The developer's login credential is issued straight into the gateway's database
(no IdP: that is the device flow's test) and stored where `gatehouse login`
would leave it; the helper is the real `gatehouse` executable, wrapped in a
script that logs each call and its exit status (never its output).

What these pin down about Claude Code 2.1.332 behind a gateway that mints
short-lived tokens:

- an access token that expires mid-session costs one 401: Claude Code re-runs
  the helper after it (``x-should-retry: false`` and ``retry-after`` do not stop
  the refresh) and the retry succeeds, whatever ``CLAUDE_CODE_API_KEY_HELPER_TTL_MS``;
- a revoked login ends the run within seconds, with "gatehouse login" in what
  the developer reads.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gatehouse.cli import credstore
from gatehouse.identity.credentials import issue_credential, revoke_credential
from gatehouse.identity.keys import load_secret
from gatehouse.settings import Settings
from gatehouse.store.db import Database
from tests.e2e import test_claude_code as harness
from tests.e2e.conftest import GatewayProcess
from tests.e2e.test_claude_code import (
    REFUSAL_BUDGET_S,
    RUN_TIMEOUT_S,
    SIM_ANSWER,
    MakeGateway,
    Run,
    Workspace,
    records,
)

pytestmark = [pytest.mark.e2e, pytest.mark.claude]

# The Claude Code harness's fixtures, shared rather than copied.
claude_bin = harness.claude_bin
workspace = harness.workspace

REMOTE = "git@github.com:acme/payments-service.git"


def gatehouse_command() -> list[str]:
    """The installed `gatehouse` executable next to this Python, else ``python -m gatehouse``."""
    script = Path(sys.executable).parent / "gatehouse"
    return [str(script)] if script.is_file() else [sys.executable, "-m", "gatehouse"]


def on_database(gw: GatewayProcess, work):  # type: ignore[no-untyped-def]
    """Run ``work(db, secret)`` against the gateway's own database, as its CLI would."""
    settings = Settings.load(gw.env)

    async def go():  # type: ignore[no-untyped-def]
        db = await Database.open(settings.resolved_database_url)
        try:
            return await work(db, load_secret(settings.secret_key, settings.data_dir))
        finally:
            await db.close()

    return asyncio.run(go())


def logged_in(workspace: Workspace, gw: GatewayProcess) -> tuple[str, Path]:
    """Issue a login for dev@example.com, store it in the workspace's HOME and install
    a helper script that runs `gatehouse key-helper`; returns (credential id, call log)."""
    cred_id, secret = on_database(
        gw, lambda db, key: issue_credential(db, "dev@example.com", "e2e", key)
    )
    config = workspace.home / ".config"
    previous = os.environ.get("XDG_CONFIG_HOME")
    os.environ["XDG_CONFIG_HOME"] = str(config)
    try:
        credstore.save(gw.url, secret, "dev@example.com", use_keyring=False)
    finally:
        if previous is None:
            del os.environ["XDG_CONFIG_HOME"]
        else:
            os.environ["XDG_CONFIG_HOME"] = previous
    subprocess.run(["git", "remote", "add", "origin", REMOTE], cwd=workspace.repo, check=True)
    calls = workspace.tmp / "helper-calls"
    script = workspace.tmp / "gatehouse-key-helper"
    command = " ".join(f"'{part}'" for part in [*gatehouse_command(), "key-helper"])
    script.write_text(
        "#!/bin/sh\n"
        f"XDG_CONFIG_HOME='{config}' {command}\n"
        "status=$?\n"
        f"echo \"exit $status\" >> '{calls}'\n"
        "exit $status\n"
    )
    script.chmod(0o755)
    workspace.settings({"apiKeyHelper": str(script)})
    return cred_id, calls


def start(
    workspace: Workspace, prompt: str, env: dict[str, str], *args: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        workspace.command(prompt, *args),
        cwd=workspace.repo,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(child: subprocess.Popen[str], started: float, timeout: float) -> Run:
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        pytest.fail(f"claude -p still running after {timeout:g} s")
    return Run(child.returncode, stdout, stderr, time.monotonic() - started)


def test_key_helper_token_works_and_carries_the_repository(
    workspace: Workspace, make_gateway: MakeGateway
) -> None:
    """The helper's token authenticates Claude Code; the record's repository is the
    signed claim the helper took from ``git remote get-url origin``."""
    gw = make_gateway()
    gw.start()
    cred_id, calls = logged_in(workspace, gw)
    run = workspace.run("Say hello to Gatehouse.", env=workspace.env(ANTHROPIC_BASE_URL=gw.url))
    result = run.succeeded()
    assert result["result"].startswith(SIM_ANSWER)
    assert calls.read_text().splitlines() == ["exit 0"]
    [record] = records(gw, 1)
    assert (record["developer"], record["key_id"]) == ("dev@example.com", f"ghr_{cred_id}")
    assert (record["repository"], record["repository_source"]) == (
        "github.com/acme/payments-service",
        "token",
    )


def test_a_token_that_expires_mid_session_is_refreshed_after_one_401(
    workspace: Workspace, make_gateway: MakeGateway
) -> None:
    """Tokens live 1 s (plus the verifier's 5 s leeway); Claude Code would keep the
    helper's answer for 10 minutes.  The first turn's answer takes 8 s, so the
    second turn carries an expired token: one 401, the helper runs again, the turn is
    retried with the new token and the session completes."""
    gw = make_gateway(access_token_ttl="1")
    gw.start()
    _, calls = logged_in(workspace, gw)
    env = workspace.env(ANTHROPIC_BASE_URL=gw.url, CLAUDE_CODE_API_KEY_HELPER_TTL_MS="600000")
    run = workspace.run(
        "CLAUDE_TOOL_LOOP: append the marker to the notes and read them back. "
        "[[sim:fault=slow_first_byte,ms=8000,times=1]]",
        "--allowedTools",
        "Bash",
        "Read",
        env=env,
    )
    result = run.succeeded()
    assert result["num_turns"] == 3
    assert calls.read_text().splitlines() == ["exit 0", "exit 0"]
    rows = records(gw, 4)
    assert [(r["status"], r["error_type"]) for r in rows] == [
        (200, ""),
        (401, "authentication_error"),
        (200, ""),
        (200, ""),
    ]
    assert {r["session_id"] for r in rows} == {result["session_id"]}
    assert run.seconds < 8 + REFUSAL_BUDGET_S


def test_a_revoked_login_ends_the_run_quickly_saying_gatehouse_login(
    workspace: Workspace, make_gateway: MakeGateway
) -> None:
    """The login is revoked as soon as the helper has printed its first token.  The
    token is refused (401: "revoked … run `gatehouse login`") on the first turn, or,
    if that slipped in before the gateway's snapshot reloaded, on the second (the
    first answer takes 3 s).  Claude Code re-runs the helper, which now fails with
    the same advice, and the run ends within seconds (three attempts, about two
    seconds: the retry-after cap holds even when the helper fails).

    Claude Code's own result text is generic ("Your apiKeyHelper script is failing
    · This usually means you need to re-authenticate with your provider"); the
    helper's stderr, with "run `gatehouse login`", is what it prints on stderr
    (and shows under /status)."""
    gw = make_gateway()
    gw.start()
    cred_id, calls = logged_in(workspace, gw)
    env = workspace.env(ANTHROPIC_BASE_URL=gw.url, CLAUDE_CODE_API_KEY_HELPER_TTL_MS="600000")
    started = time.monotonic()
    child = start(
        workspace,
        "CLAUDE_TOOL_LOOP: append the marker to the notes and read them back. "
        "[[sim:fault=slow_first_byte,ms=3000,times=1]]",
        env,
        "--allowedTools",
        "Bash",
        "Read",
    )
    deadline = time.monotonic() + 30
    while not calls.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert calls.exists(), "Claude Code never ran the apiKeyHelper"
    assert on_database(gw, lambda db, _: revoke_credential(db, cred_id))
    revoked_at = time.monotonic()
    run = finish(child, started, RUN_TIMEOUT_S)
    result = run.result
    assert run.returncode == 1, result
    assert result["is_error"] is True
    assert result["api_error_status"] == 401
    assert "apiKeyHelper script is failing" in result["result"], result["result"]
    assert "your Gatehouse login was revoked" in run.stderr, run.stderr
    assert "run `gatehouse login`" in run.stderr
    # From the revocation: at most the slow first answer (3 s), then a few quick attempts.
    assert time.monotonic() - revoked_at < 3 + REFUSAL_BUDGET_S
    helper_runs = calls.read_text().splitlines()
    assert helper_runs[0] == "exit 0"
    assert 1 <= len(helper_runs[1:]) <= 3, helper_runs
    assert set(helper_runs[1:]) == {"exit 1"}, helper_runs
    # A failed helper run does not stop the retry: Claude Code still makes its (at
    # most three, because of retry-after) attempts, each refused.
    statuses = [r["status"] for r in records(gw, 1)]
    refused = statuses[1:] if statuses[0] == 200 else statuses
    assert 1 <= len(refused) <= 3, statuses
    assert set(refused) == {401}, statuses


def test_without_a_login_the_run_ends_at_once_saying_gatehouse_login(
    workspace: Workspace, make_gateway: MakeGateway
) -> None:
    """No stored login: the helper fails, yet Claude Code still makes its three
    attempts (without a credential, each a 401) before it stops, within seconds."""
    gw = make_gateway()
    gw.start()
    _, calls = logged_in(workspace, gw)
    (workspace.home / ".config" / "gatehouse" / "credentials.json").unlink()
    run = workspace.run(
        "Say hello to Gatehouse.",
        env=workspace.env(ANTHROPIC_BASE_URL=gw.url),
        timeout=REFUSAL_BUDGET_S,
    )
    assert run.returncode == 1
    assert run.result["is_error"] is True
    assert "not signed in to Gatehouse; run `gatehouse login --gateway URL`" in run.stderr
    assert set(calls.read_text().splitlines()) == {"exit 1"}
    attempts = records(gw, 1)
    assert 1 <= len(attempts) <= 3, attempts
    assert {(r["status"], r["developer"]) for r in attempts} == {(401, "")}


def test_the_helper_prints_only_the_token_and_starts_quickly(
    workspace: Workspace, make_gateway: MakeGateway
) -> None:
    """Claude Code waits for the helper at start and after every 401: it prints one
    line (the token) and skips importing the rest of the CLI (about 1.3 s)."""
    gw = make_gateway()
    gw.start()
    logged_in(workspace, gw)
    env = {**workspace.env(), "XDG_CONFIG_HOME": str(workspace.home / ".config")}
    times = []
    for _ in range(5):
        started = time.perf_counter()
        done = subprocess.run(
            [*gatehouse_command(), "key-helper"],
            cwd=workspace.repo,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        times.append(time.perf_counter() - started)
        assert done.stderr == ""
        [line] = done.stdout.splitlines()
        assert line.startswith("gha_")
    times.sort()
    print(f"gatehouse key-helper wall time: median {times[2] * 1000:.0f} ms")
    assert times[2] < 0.6, times
