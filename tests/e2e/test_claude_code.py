"""The real Claude Code CLI, unmodified, through Gatehouse on a real socket.

Each test runs ``claude -p … --output-format json`` as a child process with a
temporary HOME, a temporary git repository as its working directory and an
environment that holds only what the test sets (nothing of the machine's
ANTHROPIC_* leaks in).  The CLI is the one pinned in tests/e2e/claude/package.json
(``make test`` installs it); ``GATEHOUSE_CLAUDE_BIN`` points the suite at another
build, which is how ``make compat-latest`` checks the newest release.

What each test pins down about Claude Code's behaviour behind a gateway is said
in its docstring; docs/claude-code.md explains the settings.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import require
from tests.e2e.conftest import GatewayProcess

pytestmark = [pytest.mark.e2e, pytest.mark.claude]

CLAUDE_DIR = Path(__file__).parent / "claude"
PINNED_BIN = CLAUDE_DIR / "node_modules" / ".bin" / "claude"
SIM_ANSWER = "Hello from gatehouse sim."
# Far below Claude Code's retry budget (10 retries, backoff up to 32 s: minutes).
REFUSAL_BUDGET_S = 10.0
RUN_TIMEOUT_S = 90.0

MakeGateway = Callable[..., GatewayProcess]


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    override = os.environ.get("GATEHOUSE_CLAUDE_BIN", "")
    path = Path(override) if override else PINNED_BIN
    require(
        path.is_file() and os.access(path, os.X_OK),
        f"Claude Code CLI not found at {path}: run `make test` (installs it with npm) "
        "or set GATEHOUSE_CLAUDE_BIN",
    )
    return path


@dataclass
class Run:
    """One finished ``claude -p`` run."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def result(self) -> dict[str, Any]:
        """The ``--output-format json`` result object."""
        try:
            parsed = orjson.loads(self.stdout)
        except orjson.JSONDecodeError:
            raise AssertionError(f"not JSON on stdout:\n{self.stdout}\n{self.stderr}") from None
        assert isinstance(parsed, dict), self.stdout
        return parsed

    def succeeded(self) -> dict[str, Any]:
        result = self.result
        assert self.returncode == 0, f"exit {self.returncode}: {result.get('result')}"
        assert result["is_error"] is False, result
        return result


@dataclass
class Workspace:
    """A developer's machine in miniature: HOME, a git repository, the CLI."""

    bin: Path
    home: Path
    repo: Path
    tmp: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(self.home),
            "TMPDIR": str(self.tmp),
            "LANG": "C.UTF-8",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
            **extra,
        }

    def command(self, prompt: str, *args: str) -> list[str]:
        return [str(self.bin), "-p", prompt, *args, "--output-format", "json"]

    def run(
        self, prompt: str, *args: str, env: dict[str, str], timeout: float = RUN_TIMEOUT_S
    ) -> Run:
        """Run to completion; a run still going after ``timeout`` seconds is killed and fails."""
        started = time.monotonic()
        try:
            done = subprocess.run(
                self.command(prompt, *args),
                cwd=self.repo,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"claude -p {prompt!r} still running after {timeout:g} s")
        return Run(done.returncode, done.stdout, done.stderr, time.monotonic() - started)

    def settings(self, document: dict[str, Any]) -> None:
        path = self.home / ".claude" / "settings.json"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(orjson.dumps(document))

    def key_helper(self, key: str) -> tuple[Path, Path]:
        """An apiKeyHelper that prints the key kept in a file and logs each call."""
        key_file, calls = self.tmp / "gatehouse-key", self.tmp / "helper-calls"
        write_atomically(key_file, key)
        script = self.tmp / "gatehouse-key-helper"
        # The call is logged after the key is printed, so a logged call has read its key.
        script.write_text(f"#!/bin/sh\ncat '{key_file}'\necho called >> '{calls}'\n")
        script.chmod(0o755)
        self.settings({"apiKeyHelper": str(script)})
        return key_file, calls


@pytest.fixture
def workspace(claude_bin: Path, tmp_path: Path) -> Workspace:
    home, repo, tmp = tmp_path / "home", tmp_path / "payments-service", tmp_path / "tmp"
    for path in (home, repo, tmp):
        path.mkdir()
    # What a developer who already ran Claude Code once has: no onboarding, a trusted repo.
    state = {
        "hasCompletedOnboarding": True,
        "projects": {str(repo): {"hasTrustDialogAccepted": True}},
    }
    (home / ".claude.json").write_bytes(orjson.dumps(state))
    git = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1"}
    (repo / "README.md").write_text("# payments-service\n")
    for args in (
        ["init", "-q"],
        ["add", "README.md"],
        ["-c", "user.name=Dev", "-c", "user.email=dev@example.com", "commit", "-q", "-m", "init"],
    ):
        subprocess.run(["git", *args], cwd=repo, env=git, check=True, capture_output=True)
    return Workspace(claude_bin, home, repo, tmp)


@pytest.fixture
def gateway(make_gateway: MakeGateway) -> tuple[GatewayProcess, str]:
    """A started gateway with no extra settings, and one developer key."""
    gw = make_gateway()
    key = gw.new_key("dev@example.com", "payments")
    gw.start()
    return gw, key


def write_atomically(path: Path, text: str) -> None:
    partial = path.with_suffix(".partial")
    partial.write_text(text + "\n")
    partial.replace(path)


def key_id(key: str) -> str:
    return key.split("_")[1]


def records(gw: GatewayProcess, at_least: int) -> list[dict[str, Any]]:
    """The gateway's usage records, oldest first, once ``at_least`` reached the database.

    The CLI has exited, so every request it made has been answered; the records are
    durable in the spool and reach the database moments later.
    """
    deadline = time.monotonic() + 15
    while True:
        rows = gw.usage()
        if len(rows) >= at_least or time.monotonic() > deadline:
            return sorted(rows, key=lambda r: float(r["ts"]))  # type: ignore[arg-type]
        time.sleep(0.1)


def test_the_cli_under_test(claude_bin: Path) -> None:
    """The suite drives the version package.json pins (unless GATEHOUSE_CLAUDE_BIN is set)."""
    out = subprocess.run(
        [str(claude_bin), "--version"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    version = out.split()[0]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), out
    if not os.environ.get("GATEHOUSE_CLAUDE_BIN"):
        pinned = orjson.loads((CLAUDE_DIR / "package.json").read_bytes())
        assert version == pinned["dependencies"]["@anthropic-ai/claude-code"], (
            "node_modules is stale: run `make test`, which reinstalls the pinned CLI"
        )


@pytest.mark.parametrize("style", ["api_key", "auth_token", "api_key_helper"])
def test_plain_prompt_with_each_credential_style(
    workspace: Workspace, gateway: tuple[GatewayProcess, str], style: str
) -> None:
    """ANTHROPIC_API_KEY (x-api-key), ANTHROPIC_AUTH_TOKEN (Bearer) and an apiKeyHelper
    (both headers) all authenticate; one prompt is one /v1/messages request, recorded
    under the developer, the key and Claude Code's own session id."""
    gw, key = gateway
    extra = {"api_key": {"ANTHROPIC_API_KEY": key}, "auth_token": {"ANTHROPIC_AUTH_TOKEN": key}}
    if style == "api_key_helper":
        workspace.key_helper(key)
    run = workspace.run(
        "Say hello to Gatehouse.",
        env=workspace.env(ANTHROPIC_BASE_URL=gw.url, **extra.get(style, {})),
    )
    result = run.succeeded()
    assert result["result"].startswith(SIM_ANSWER)
    [record] = records(gw, 1)
    assert record["endpoint"] == "/v1/messages"
    assert record["status"] == 200
    assert record["session_id"] == result["session_id"]
    assert (record["developer"], record["team"], record["key_id"]) == (
        "dev@example.com",
        "payments",
        key_id(key),
    )
    assert record["client"] == "claude-cli"
    assert record["streamed"] is True
    # Gatehouse's ledger agrees with what the client itself counted.
    [model] = result["modelUsage"]
    assert record["model"] == model
    usage = result["usage"]
    for field in (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ):
        assert record[field] == usage[field], field


def test_tool_loop_runs_real_tools_in_one_session(
    workspace: Workspace, gateway: tuple[GatewayProcess, str]
) -> None:
    """The scenario makes the model call Bash (append a marker, print the file's path)
    and then Read on that path; Claude Code runs both for real and sends the results
    back; the last answer quotes what Read returned (the scenario's {tool_result})."""
    gw, key = gateway
    seeded = f"seeded-by-test-{uuid.uuid4().hex[:8]}"
    (workspace.repo / "gatehouse-notes.txt").write_text(seeded + "\n")
    run = workspace.run(
        "CLAUDE_TOOL_LOOP: append the marker to the notes and read them back.",
        "--allowedTools",
        "Bash",
        "Read",
        env=workspace.env(ANTHROPIC_BASE_URL=gw.url, ANTHROPIC_AUTH_TOKEN=key),
    )
    result = run.succeeded()
    assert result["permission_denials"] == []
    assert result["num_turns"] == 3
    assert seeded in result["result"]  # Read really read the file
    assert "gatehouse-bash-ran-4242" in result["result"]  # ... after Bash really wrote to it
    assert (workspace.repo / "gatehouse-notes.txt").read_text() == (
        f"{seeded}\ngatehouse-bash-ran-4242\n"
    )
    turns = records(gw, 3)
    assert [r["stop_reason"] for r in turns] == ["tool_use", "tool_use", "end_turn"]
    assert {r["session_id"] for r in turns} == {result["session_id"]}
    assert {r["status"] for r in turns} == {200}
    # Chargeback agrees with the CLI's own bill for the session, priced at list: each
    # record is rounded once to a whole micro-dollar, the CLI keeps floats.
    assert all(isinstance(r["cost_micros"], int) for r in turns), turns
    ours = sum(int(r["cost_micros"]) for r in turns)  # type: ignore[call-overload]
    theirs = result["total_cost_usd"] * 1_000_000
    assert ours > 0
    assert abs(ours - theirs) <= 0.5 * len(turns) + 1e-6, (ours, theirs, result["modelUsage"])


def test_api_key_helper_rotated_key_is_picked_up_after_401(
    workspace: Workspace, make_gateway: MakeGateway
) -> None:
    """Claude Code re-runs apiKeyHelper after a 401 and retries with the new key.

    It does so although Gatehouse's 401 says ``x-should-retry: false``: with a
    helper, a 401 is retried with backoff (~1 s, 1 s, 2 s, 4.5 s … up to 10
    retries), the helper re-run before each attempt.  (With ANTHROPIC_API_KEY or
    ANTHROPIC_AUTH_TOKEN the same 401 ends the run at once; see the refusal test.)
    Here the helper first prints a revoked key; once Claude Code has read it, the
    platform "rotates" the key file, and the run succeeds on the second attempt.
    """
    gw = make_gateway()
    revoked = gw.new_key("dev@example.com", "payments")
    gw.cli("keys", "revoke", key_id(revoked))
    rotated = gw.new_key("dev@example.com", "payments")
    gw.start()
    key_file, calls = workspace.key_helper(revoked)
    env = workspace.env(ANTHROPIC_BASE_URL=gw.url)
    started = time.monotonic()
    child = subprocess.Popen(
        workspace.command("Say hello to Gatehouse."),
        cwd=workspace.repo,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not calls.exists() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert calls.exists(), "Claude Code never ran the apiKeyHelper"
        write_atomically(key_file, rotated)
        stdout, stderr = child.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    run = Run(child.returncode, stdout, stderr, time.monotonic() - started)
    result = run.succeeded()
    assert result["result"].startswith(SIM_ANSWER)
    assert run.seconds < REFUSAL_BUDGET_S
    assert calls.read_text().splitlines() == ["called", "called"]
    first, second = records(gw, 2)
    assert (first["status"], first["error_type"]) == (401, "authentication_error")
    assert (second["status"], second["key_id"]) == (200, key_id(rotated))
    assert second["session_id"] == result["session_id"]


def test_custom_headers_name_the_repository(
    workspace: Workspace, gateway: tuple[GatewayProcess, str]
) -> None:
    """ANTHROPIC_CUSTOM_HEADERS reaches Gatehouse on every request; X-Gatehouse-Repo
    is the most trusted source of the repository. CLAUDE_CODE_GATEWAY_HINT_HEADERS
    adds the request class."""
    gw, key = gateway
    env = workspace.env(
        ANTHROPIC_BASE_URL=gw.url,
        ANTHROPIC_AUTH_TOKEN=key,
        ANTHROPIC_CUSTOM_HEADERS="X-Gatehouse-Repo: github.com/acme/payments",
        CLAUDE_CODE_GATEWAY_HINT_HEADERS="1",
    )
    result = workspace.run("Say hello to Gatehouse.", env=env).succeeded()
    [record] = records(gw, 1)
    assert record["session_id"] == result["session_id"]
    assert (record["repository"], record["repository_source"]) == (
        "github.com/acme/payments",
        "header",
    )
    assert record["request_class"] == "main"


def test_context_command_counts_tokens_through_gatehouse(
    workspace: Workspace, gateway: tuple[GatewayProcess, str]
) -> None:
    """``/context`` sizes the context with /v1/messages/count_tokens (dozens of calls)."""
    gw, key = gateway
    env = workspace.env(ANTHROPIC_BASE_URL=gw.url, ANTHROPIC_AUTH_TOKEN=key)
    result = workspace.run("/context", env=env).succeeded()
    assert "Context Usage" in result["result"]
    rows = records(gw, 1)
    counted = [r for r in rows if r["endpoint"] == "/v1/messages/count_tokens"]
    assert counted, rows
    assert {r["status"] for r in counted} == {200}
    assert {r["session_id"] for r in counted} == {result["session_id"]}


def test_vertex_mode_through_gatehouse(
    workspace: Workspace, gateway: tuple[GatewayProcess, str]
) -> None:
    """CLAUDE_CODE_USE_VERTEX=1 with ANTHROPIC_VERTEX_BASE_URL at Gatehouse: Claude Code
    posts …/publishers/anthropic/models/{model}:streamRawPredict without a Google
    token (SKIP_VERTEX_AUTH) and with Gatehouse's key as ANTHROPIC_AUTH_TOKEN."""
    gw, key = gateway
    env = workspace.env(
        CLAUDE_CODE_USE_VERTEX="1",
        ANTHROPIC_VERTEX_BASE_URL=gw.url + "/vertex",
        CLAUDE_CODE_SKIP_VERTEX_AUTH="1",
        ANTHROPIC_VERTEX_PROJECT_ID="acme-ai",
        CLOUD_ML_REGION="us-east5",
        ANTHROPIC_AUTH_TOKEN=key,
    )
    result = workspace.run("Say hello to Gatehouse.", env=env).succeeded()
    assert result["result"].startswith(SIM_ANSWER)
    [record] = records(gw, 1)
    prefix = "/vertex/projects/acme-ai/locations/us-east5/publishers/anthropic/models/"
    assert record["endpoint"].startswith(prefix), record["endpoint"]
    assert record["endpoint"].endswith(":streamRawPredict")
    model = record["endpoint"].removeprefix(prefix).removesuffix(":streamRawPredict")
    assert record["model"] == model
    assert (record["status"], record["streamed"]) == (200, True)
    assert record["session_id"] == result["session_id"]
    assert record["developer"] == "dev@example.com"
    assert record["output_tokens"] == result["usage"]["output_tokens"] > 0


@dataclass(frozen=True)
class Refusal:
    settings: dict[str, str]
    status: int
    error_type: str
    message: str


REFUSALS = {
    "unknown_key": Refusal({}, 401, "authentication_error", "Gatehouse does not recognise"),
    "model_not_approved": Refusal(
        {"approved_models": "claude-sonnet-*"}, 403, "permission_error", "is not approved"
    ),
    "rate_limited": Refusal(
        {"rate_limit": "1/hour"}, 429, "rate_limit_error", "Rate limit reached"
    ),
}


@pytest.mark.parametrize(
    ("case", "credential"),
    [
        ("unknown_key", "auth_token"),
        ("model_not_approved", "auth_token"),
        ("rate_limited", "auth_token"),
        ("unknown_key", "api_key_helper"),
        ("model_not_approved", "api_key_helper"),
        ("rate_limited", "api_key_helper"),
    ],
)
def test_gatehouse_refusals_end_the_run_quickly(
    workspace: Workspace, make_gateway: MakeGateway, case: str, credential: str
) -> None:
    """Gatehouse's own refusals end the run in seconds, not after Claude Code's retry
    budget (minutes), and the developer sees Gatehouse's message.

    With ANTHROPIC_AUTH_TOKEN, ``x-should-retry: false`` means one attempt.  With an
    apiKeyHelper, Claude Code re-runs the helper and retries a 401 or 403 (the key
    may have rotated): up to three attempts in ~2 s are fine, so long as the
    refusal also says ``retry-after`` > 60 s; a 429 is still one attempt.
    """
    refusal = REFUSALS[case]
    gw = make_gateway(**refusal.settings)
    key = gw.new_key("dev@example.com", "payments")
    gw.start()
    earlier = 0
    if case == "unknown_key":
        key = "ghk_unknown0_" + "x" * 40
    elif case == "rate_limited":
        # The developer's one request this hour, spent before Claude Code starts.
        primer = {
            "model": "claude-sonnet-4-6",
            "max_tokens": 16,
            "messages": [{"role": "user", "content": "hi"}],
        }
        response = httpx.post(gw.url + "/v1/messages", json=primer, headers={"x-api-key": key})
        assert response.status_code == 200, response.text
        earlier = 1
    if credential == "api_key_helper":
        workspace.key_helper(key)
        env = workspace.env(ANTHROPIC_BASE_URL=gw.url)
    else:
        env = workspace.env(ANTHROPIC_BASE_URL=gw.url, ANTHROPIC_AUTH_TOKEN=key)
    # An opus model is never in the approved list above, whatever the CLI's default.
    run = workspace.run(
        "Say hello to Gatehouse.", "--model", "opus", env=env, timeout=REFUSAL_BUDGET_S
    )
    result = run.result
    assert run.returncode == 1
    assert result["is_error"] is True
    assert result["api_error_status"] == refusal.status
    assert refusal.message in result["result"]
    attempts = records(gw, earlier + 1)[earlier:]
    assert {(r["status"], r["error_type"]) for r in attempts} == {
        (refusal.status, refusal.error_type)
    }
    most = 1 if credential == "auth_token" or case == "rate_limited" else 3
    assert 1 <= len(attempts) <= most, attempts


@pytest.mark.parametrize(("failures", "succeeds"), [(2, True), (3, False)])
def test_overloaded_upstream_is_retried_three_times(
    workspace: Workspace, gateway: tuple[GatewayProcess, str], failures: int, succeeds: bool
) -> None:
    """An upstream 529 passes through as it is (no ``x-should-retry: false``), so
    Claude Code retries it — three attempts in all: a storm of two 529s is ridden
    out, a third gives up with "Repeated 529 Overloaded errors"."""
    gw, key = gateway
    env = workspace.env(ANTHROPIC_BASE_URL=gw.url, ANTHROPIC_AUTH_TOKEN=key)
    run = workspace.run(f"Say hello. [[sim:fault=overloaded,times={failures}]]", env=env)
    result = run.result
    attempts = records(gw, 3)
    assert {r["session_id"] for r in attempts} == {result["session_id"]}
    assert run.seconds < REFUSAL_BUDGET_S
    if succeeds:
        assert run.returncode == 0, result
        assert result["result"].startswith(SIM_ANSWER)
        assert [r["status"] for r in attempts] == [529, 529, 200]
    else:
        assert run.returncode == 1
        assert "Repeated 529 Overloaded" in result["result"]
        assert [r["status"] for r in attempts] == [529, 529, 529]


def test_setup_command_settings_file_is_all_claude_code_needs(
    workspace: Workspace, gateway: tuple[GatewayProcess, str]
) -> None:
    """``gatehouse setup claude-code --format settings`` written to ~/.claude/settings.json
    (base URL, traffic switches, hint headers, an apiKeyHelper) works with nothing set
    in the shell but PATH and HOME."""
    gw, key = gateway
    key_file, _ = workspace.key_helper(key)
    helper = f"cat '{key_file}'"
    printed = subprocess.run(
        [
            *(sys.executable, "-m", "gatehouse", "setup", "claude-code"),
            *("--gateway", gw.url + "/", "--format", "settings", "--key-helper", helper),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    workspace.settings(orjson.loads(printed))
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(workspace.home)}
    result = workspace.run("Say hello to Gatehouse.", env=env).succeeded()
    assert result["result"].startswith(SIM_ANSWER)
    [record] = records(gw, 1)
    assert (record["status"], record["key_id"]) == (200, key_id(key))
    assert record["request_class"] == "main"
