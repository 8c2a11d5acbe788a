"""The real Claude Code CLI against an enforcing policy: refusals it shows at once.

A 403 from Gatehouse carries ``x-should-retry: false``, so `claude -p` makes one
attempt and shows the developer the message: how to name or request the
repository, or who to contact about a kill switch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import GatewayProcess
from tests.e2e.test_claude_code import (  # noqa: F401 - fixtures
    REFUSAL_BUDGET_S,
    Workspace,
    claude_bin,
    records,
    workspace,
)

pytestmark = [pytest.mark.e2e, pytest.mark.claude]

MakeGateway = Callable[..., GatewayProcess]
REPO = "github.com/acme/payments-service"


def test_claude_code_is_refused_then_served_then_stopped(
    workspace: Workspace,  # noqa: F811 - the fixture imported above
    make_gateway: MakeGateway,
    tmp_path: Path,
) -> None:
    gw = make_gateway(policy_mode="enforce", policy_refresh_interval="0.1")
    key = gw.new_key("dev@example.com", "payments")
    gw.start()
    base = {"ANTHROPIC_BASE_URL": gw.url, "ANTHROPIC_AUTH_TOKEN": key}

    # A checkout without a remote names no repository: one attempt, and how to name it.
    run = workspace.run("Say hello.", env=workspace.env(**base), timeout=REFUSAL_BUDGET_S)
    assert run.returncode == 1 and run.result["api_error_status"] == 403
    assert "X-Gatehouse-Repo" in run.result["result"]
    assert run.seconds < REFUSAL_BUDGET_S

    # Named but not approved: how to request it.
    named = workspace.env(**base, ANTHROPIC_CUSTOM_HEADERS=f"X-Gatehouse-Repo: {REPO}")
    run = workspace.run("Say hello.", env=named, timeout=REFUSAL_BUDGET_S)
    assert run.result["api_error_status"] == 403
    assert f"gatehouse repos request {REPO} --reason" in run.result["result"]

    # Approved: served.
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"repositories:\n  {REPO}:\n    classification: internal\n")
    gw.cli("policy", "apply", str(policy), "--reason", "e2e", "--by", "sec@acme.com")
    run = workspace.run("Say hello.", env=named)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.result["is_error"] is False

    # A kill switch with its reason shown.
    gw.cli(
        "killswitch", "on", "--scope", f"repository:{REPO}", "--reason", "credential leak",
        "--show-reason", "--by", "sec@acme.com",
    )  # fmt: skip
    run = workspace.run("Say hello.", env=named, timeout=REFUSAL_BUDGET_S)
    assert run.result["api_error_status"] == 403
    assert "Reason: credential leak." in run.result["result"]
    assert "sec@acme.com" in run.result["result"]
    refused = [r for r in records(gw, 1) if r["status"] == 403]
    assert refused and all(r["error_type"] == "permission_error" for r in refused)
