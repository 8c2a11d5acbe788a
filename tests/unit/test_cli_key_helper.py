"""`gatehouse key-helper` without a gateway, and `gatehouse setup claude-code` installing it.

tests/e2e/test_key_helper.py runs both against a real gateway and the real Claude Code.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from gatehouse.cli import credstore, keyhelper
from gatehouse.cli.main import app

GATEWAY = "https://gatehouse.corp.example"


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
    return tmp_path


def test_without_a_login_the_helper_fails_saying_gatehouse_login(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert keyhelper.main([]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "not signed in" in err
    assert "gatehouse login --gateway URL" in err


def test_an_unreachable_gateway_is_said_plainly(capsys: pytest.CaptureFixture[str]) -> None:
    credstore.save("http://127.0.0.1:9", "ghr_x", "dev@example.com", use_keyring=False)
    assert keyhelper.main([]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "cannot reach Gatehouse at http://127.0.0.1:9" in err
    assert "ghr_x" not in err


def test_the_repository_is_origin_or_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    assert keyhelper.repository(repo) == ""
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    assert keyhelper.repository(repo) == ""
    subprocess.run(
        ["git", "remote", "add", "origin", "git@github.com:acme/pay.git"], cwd=repo, check=True
    )
    assert keyhelper.repository(repo) == "git@github.com:acme/pay.git"


def test_the_launcher_answers_key_helper_without_the_rest_of_the_cli(tmp_path: Path) -> None:
    probe = (
        "import sys; sys.argv = ['gatehouse', 'key-helper', '--help']\n"
        "from gatehouse.cli import launcher\n"
        "try:\n    launcher.main()\nexcept SystemExit:\n    pass\n"
        "print('typer' in sys.modules, 'gatehouse.app' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "False False"


def setup(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(app, ["setup", "claude-code", *args])
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else " ".join(result.output.replace("│", " ").split())


def test_install_merges_into_existing_settings(home: Path) -> None:
    credstore.save(GATEWAY + "/", "ghr_x", "dev@example.com", use_keyring=False)
    path = home / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_bytes(
        orjson.dumps(
            {
                "model": "opus",
                "permissions": {"allow": ["Bash(git status)"]},
                "env": {"MY_VAR": "1", "ANTHROPIC_AUTH_TOKEN": "ghk_old"},
            }
        )
    )
    setup()
    document = orjson.loads(path.read_bytes())
    assert document["model"] == "opus"
    assert document["permissions"] == {"allow": ["Bash(git status)"]}
    assert document["env"]["MY_VAR"] == "1"
    assert document["env"]["ANTHROPIC_BASE_URL"] == GATEWAY
    # A static token would win over the helper: it goes.
    assert "ANTHROPIC_AUTH_TOKEN" not in document["env"]
    helper = document["apiKeyHelper"]
    assert helper.endswith("key-helper")
    assert "gatehouse" in helper


def test_print_shows_without_writing(home: Path) -> None:
    printed = orjson.loads(setup("--gateway", GATEWAY, "--print"))
    assert printed["env"]["ANTHROPIC_BASE_URL"] == GATEWAY
    assert printed["apiKeyHelper"].endswith("key-helper")
    assert not (home / ".claude" / "settings.json").exists()


def test_install_needs_a_login_or_a_gateway() -> None:
    assert "gatehouse login --gateway URL" in setup(code=2)
    assert "--managed, --key" in setup("--install", "--gateway", GATEWAY, "--key", "k", code=2)


def test_a_broken_settings_file_is_not_clobbered(home: Path) -> None:
    path = home / ".claude" / "settings.json"
    path.parent.mkdir()
    path.write_text("{oops")
    assert "not valid JSON" in setup("--gateway", GATEWAY, "--install", code=2)
    assert path.read_text() == "{oops"
