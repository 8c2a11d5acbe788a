"""Path rules with the real Claude Code CLI: a Read of secrets/prod.env never leaves.

The gateway enforces its policy with the workspace's repository approved
(``gatehouse policy apply``), named by ``X-Gatehouse-Repo`` through
ANTHROPIC_CUSTOM_HEADERS (``claude -p`` sends no git remote of its own).  The
simulator's ``CLAUDE_READ_SECRET`` scenario makes the model run Bash
(``realpath secrets/prod.env``) and then Read that path; its last answer quotes
the tool result it received, so the answer shows what reached the upstream.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gatehouse.policy.document import PathRule, Policy, RepoRule, dump_yaml
from tests.e2e import test_claude_code as claude_code
from tests.e2e.conftest import GatewayProcess
from tests.e2e.test_claude_code import MakeGateway, Workspace, records

# The Claude Code harness's fixtures: the pinned CLI and a developer's workspace.
claude_bin = claude_code.claude_bin
workspace = claude_code.workspace

pytestmark = [pytest.mark.e2e, pytest.mark.claude]

REPOSITORY = "github.com/acme/payments-service"
PROMPT = "CLAUDE_READ_SECRET: show me the production settings."


def _gateway(
    make_gateway: MakeGateway, tmp_path: Path, rule: PathRule
) -> tuple[GatewayProcess, str]:
    gw = make_gateway(policy_mode="enforce")
    approved = RepoRule("confidential", (rule,), "sec@acme.com")
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(dump_yaml(Policy(repositories={REPOSITORY: approved})))
    gw.cli("policy", "apply", str(policy_file), "--reason", "e2e", "--by", "sec@acme.com")
    key = gw.new_key("dev@example.com", "payments")
    gw.start()
    return gw, key


def _secret(workspace: Workspace) -> str:
    secret = f"STRIPE_KEY=sk_live_{uuid.uuid4().hex}"
    (workspace.repo / "secrets").mkdir()
    (workspace.repo / "secrets" / "prod.env").write_text(secret + "\n")
    return secret


def _env(workspace: Workspace, gw: GatewayProcess, key: str) -> dict[str, str]:
    return workspace.env(
        ANTHROPIC_BASE_URL=gw.url,
        ANTHROPIC_AUTH_TOKEN=key,
        ANTHROPIC_CUSTOM_HEADERS=f"X-Gatehouse-Repo: {REPOSITORY}",
    )


def test_a_redacted_read_keeps_the_secret_home_and_the_cli_working(
    workspace: Workspace, make_gateway: MakeGateway, tmp_path: Path
) -> None:
    """``secrets/**`` redact: the CLI finishes (exit 0), three turns; the upstream saw
    the marker in place of the file, on the turn it was new and never after."""
    gw, key = _gateway(make_gateway, tmp_path, PathRule("secrets/**", "redact", "secrets"))
    secret = _secret(workspace)
    run = workspace.run(PROMPT, "--allowedTools", "Bash", "Read", env=_env(workspace, gw, key))
    result = run.succeeded()
    assert result["num_turns"] == 3
    marker = '[gatehouse: content of secrets/prod.env withheld by path rule "secrets" (redact)]'
    assert result["result"] == f"Read returned: {marker}"
    assert secret not in result["result"]
    turns = records(gw, 3)
    assert [r["status"] for r in turns] == [200, 200, 200]
    assert {(r["repository"], r["repository_source"]) for r in turns} == {(REPOSITORY, "header")}


def test_a_block_rule_stops_the_run_with_the_rule_and_path(
    workspace: Workspace, make_gateway: MakeGateway, tmp_path: Path
) -> None:
    """``secrets/**`` block: the turn carrying the file is refused (403, no retries
    with ANTHROPIC_AUTH_TOKEN) and the developer reads the rule and the path."""
    gw, key = _gateway(make_gateway, tmp_path, PathRule("secrets/**", "block", "secrets"))
    secret = _secret(workspace)
    run = workspace.run(PROMPT, "--allowedTools", "Bash", "Read", env=_env(workspace, gw, key))
    result = run.result
    assert run.returncode == 1
    assert result["is_error"] is True
    assert result["api_error_status"] == 403
    assert 'path rule "secrets"' in result["result"]
    assert "secrets/prod.env" in result["result"]
    assert secret not in result["result"]
    turns = records(gw, 3)
    assert [r["status"] for r in turns] == [200, 200, 403]
