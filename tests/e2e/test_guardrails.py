"""Guardrails with the real Claude Code CLI: a secret Read from disk never leaves.

The simulator's ``CLAUDE_READ_SECRET`` scenario makes the model run Bash
(``realpath secrets/prod.env``) and then Read that path; its last answer quotes
the tool result it received, so the answer shows what reached the upstream.
No path rule applies here: the guardrails alone redact the key (secrets →
redact by default) on the turn the file is new and on every turn after, with
the same bytes, and a classification marker blocks the turn carrying it.
"""

from __future__ import annotations

import uuid

import pytest

from tests.e2e import test_claude_code as claude_code
from tests.e2e.conftest import GatewayProcess
from tests.e2e.test_claude_code import MakeGateway, Run, Workspace, records

claude_bin = claude_code.claude_bin
workspace = claude_code.workspace

pytestmark = [pytest.mark.e2e, pytest.mark.claude]

PROMPT = "CLAUDE_READ_SECRET: show me the production settings."


def _run(
    workspace: Workspace, make_gateway: MakeGateway, content: str
) -> tuple[GatewayProcess, Run]:
    (workspace.repo / "secrets").mkdir()
    (workspace.repo / "secrets" / "prod.env").write_text(content + "\n")
    gw = make_gateway()
    key = gw.new_key("dev@example.com", "payments")
    gw.start()
    env = workspace.env(ANTHROPIC_BASE_URL=gw.url, ANTHROPIC_AUTH_TOKEN=key)
    return gw, workspace.run(PROMPT, "--allowedTools", "Bash", "Read", env=env)


def test_a_secret_read_from_disk_is_redacted_on_every_turn(
    workspace: Workspace, make_gateway: MakeGateway
) -> None:
    secret = "sk_live_" + uuid.uuid4().hex
    gw, run = _run(workspace, make_gateway, f"STRIPE_SECRET_KEY={secret}")
    result = run.succeeded()
    assert result["num_turns"] == 3
    assert "Read returned:" in result["result"]
    assert "[REDACTED:" in result["result"] and secret not in result["result"]
    turns = records(gw, 3)
    assert [r["status"] for r in turns] == [200, 200, 200]
    # The file's tool result is new on turn 3 only; the verdict shows it.
    assert [r["guard"] for r in turns] == ["clean", "clean", "redacted"]


def test_a_classification_marker_stops_the_run_and_says_why(
    workspace: Workspace, make_gateway: MakeGateway
) -> None:
    gw, run = _run(workspace, make_gateway, "TLP:RED — incident 4711 notes")
    result = run.result
    assert run.returncode == 1
    assert result["is_error"] is True and result["api_error_status"] == 403
    assert "tlp-red" in result["result"] and "incident 4711" not in result["result"]
    turns = records(gw, 3)
    assert [(r["status"], r["guard"]) for r in turns] == [
        (200, "clean"),
        (200, "clean"),
        (403, "blocked"),
    ]
