"""`gatehouse setup claude-code`: what it prints for a shell, a user and a fleet.

tests/e2e/test_claude_code.py runs the real Claude Code CLI on the settings file.
"""

from __future__ import annotations

import subprocess
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from gatehouse.cli.main import app

GATEWAY = "https://gatehouse.corp.example"
TRAFFIC = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
}


def setup(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["setup", "claude-code", *args])
    assert result.exit_code == code, result.output
    if code == 0:
        return result.stdout
    # Typer draws errors in a box that wraps with the terminal's width.
    return " ".join(result.output.replace("│", " ").split())


def setup_json(*args: str) -> dict[str, Any]:
    document = orjson.loads(setup(*args))
    assert isinstance(document, dict)
    return document


def test_shell_lines_can_be_evaluated() -> None:
    printed = setup("--gateway", GATEWAY + "/", "--key", "ghk_abc'def", "--repo", "acme/pay")
    shell = subprocess.run(
        [
            "/bin/sh",
            "-c",
            printed + 'printf "%s|" "$ANTHROPIC_BASE_URL" "$ANTHROPIC_AUTH_TOKEN" '
            '"$ANTHROPIC_CUSTOM_HEADERS" "$CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"',
        ],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert shell.stdout == f"{GATEWAY}|ghk_abc'def|X-Gatehouse-Repo: acme/pay|1|"


def test_shell_lines_without_a_key_say_where_to_get_one() -> None:
    printed = setup("--gateway", GATEWAY)
    assert "# export ANTHROPIC_AUTH_TOKEN=<your Gatehouse key" in printed
    assert "export CLAUDE_CODE_GATEWAY_HINT_HEADERS=1" in printed
    assert "HINT" not in setup("--gateway", GATEWAY, "--no-hint-headers")


def test_user_settings_document() -> None:
    document = setup_json("--gateway", GATEWAY, "--format", "settings", "--key-helper", "gh-key")
    assert document == {
        "env": {
            "ANTHROPIC_BASE_URL": GATEWAY,
            **TRAFFIC,
            "CLAUDE_CODE_GATEWAY_HINT_HEADERS": "1",
        },
        "apiKeyHelper": "gh-key",
        "skipWebFetchPreflight": True,
    }


def test_managed_settings_force_the_gateway_and_never_a_login_method() -> None:
    document = setup_json("--gateway", GATEWAY, "--managed", "--key-helper", "/usr/bin/gh-key")
    env = document["env"]
    assert env["ANTHROPIC_BASE_URL"] == GATEWAY
    assert TRAFFIC.items() <= env.items()
    assert document["apiKeyHelper"] == "/usr/bin/gh-key"
    # Either key blocks every gateway credential at start-up.
    assert "forceLoginMethod" not in document
    assert "forceLoginOrgUUID" not in document
    # No credential is shared through the fleet's file.
    assert not {"ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY"} & env.keys()


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--managed", "--key", "ghk_x"], "shared by every developer"),
        (["--managed", "--repo", "acme/pay"], "per repository"),
        (["--key", "ghk_x", "--key-helper", "gh-key"], "not both"),
    ],
)
def test_settings_that_would_be_wrong_are_refused(args: list[str], complaint: str) -> None:
    assert complaint in setup("--gateway", GATEWAY, *args, code=2)


@pytest.mark.parametrize("url", ["gatehouse.corp", "ftp://gatehouse.corp", "https://gw/?a=1"])
def test_the_gateway_must_be_a_plain_http_url(url: str) -> None:
    setup("--gateway", url, code=2)
