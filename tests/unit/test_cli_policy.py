"""`gatehouse policy|killswitch|models` on a SQLite data directory: what security types."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from gatehouse.cli.main import app
from gatehouse.policy.document import load_yaml


@pytest.fixture
def gatehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    for name in list(os.environ):
        if name.startswith("GATEHOUSE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GATEHOUSE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    return run


GOOD = """
contact: security@acme.com
repositories:
  github.com/acme/payments:
    classification: confidential
    paths:
      - glob: secrets/**
models:
  approved: [claude-sonnet-*]
"""


def test_export_diff_apply_history(gatehouse, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    exported = gatehouse("policy", "export")
    assert exported.startswith("# version 0\n")
    assert load_yaml(exported).repositories == {}
    file = tmp_path / "policy.yaml"
    file.write_text(GOOD)
    said = gatehouse("policy", "diff", str(file))
    assert "+ repository github.com/acme/payments (confidential, 1 path rule)" in said
    said = gatehouse("policy", "apply", str(file), "--reason", "SEC-1", "--by", "sec@acme.com")
    assert "Policy version 1 applied" in said
    assert "nothing to apply" in gatehouse("policy", "diff", str(file))
    assert "nothing changed" in gatehouse("policy", "apply", str(file), "--by", "sec@acme.com")
    out = tmp_path / "out.yaml"
    gatehouse("policy", "export", "--output", str(out))
    assert load_yaml(out.read_text()) == load_yaml(GOOD)
    [latest, first] = [
        orjson.loads(line) for line in gatehouse("policy", "history", "--json").splitlines()
    ]
    assert (latest["version"], latest["author"], latest["source"]) == (1, "sec@acme.com", "file")
    assert latest["reason"] == "SEC-1" and first["version"] == 0


def test_an_invalid_file_names_its_line_and_changes_nothing(gatehouse, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "bad.yaml"
    file.write_text(GOOD.replace("confidential", "top-secret"))
    said = gatehouse("policy", "apply", str(file), code=2)
    assert f"{file}:5: the classification of github.com/acme/payments" in said
    assert "# version 0" in gatehouse("policy", "export")
    said = gatehouse("policy", "apply", str(tmp_path / "missing.yaml"), code=2)
    assert "cannot read" in said


def test_only_security_applies_a_whole_policy(gatehouse, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    file = tmp_path / "policy.yaml"
    file.write_text(GOOD)
    said = gatehouse("policy", "apply", str(file), "--role", "platform-admin", code=2)
    assert "security role's alone" in said
    gatehouse("policy", "apply", str(file), "--role", "auditor", code=2)


def test_killswitch_on_list_off(gatehouse) -> None:  # type: ignore[no-untyped-def]
    assert "No kill switch" in gatehouse("killswitch", "list")
    said = gatehouse(
        "killswitch", "on", "--scope", "team:payments", "--reason", "leak", "--show-reason",
        "--by", "ops@acme.com", "--role", "platform-admin", "--on-behalf-of", "sec@acme.com",
    )  # fmt: skip
    assert "Kill switch ON for team:payments (reason shown to developers)" in said
    [switch] = orjson.loads(gatehouse("killswitch", "list", "--json"))
    assert switch["on_behalf_of"] == "sec@acme.com" and switch["thrown_by"] == "ops@acme.com"
    said = gatehouse(
        "killswitch", "on", "--scope", "global", "--reason", "x", "--role", "platform-admin",
        code=2,
    )  # fmt: skip
    assert "on security's instruction" in said
    gatehouse("killswitch", "on", "--scope", "everyone", "--reason", "x", code=2)
    gatehouse("killswitch", "off", "--scope", "team:payments", "--reason", "rotated")
    said = gatehouse("killswitch", "off", "--scope", "team:payments", "--reason", "again", code=2)
    assert "no kill switch is thrown for team:payments" in said


def test_models_propose_approve_revoke(gatehouse) -> None:  # type: ignore[no-untyped-def]
    gatehouse("models", "propose", "claude-opus-4-5", "--reason", "refactors", "--by", "ops@a")
    listed = orjson.loads(gatehouse("models", "list", "--json"))
    assert listed["proposed"][0]["model"] == "claude-opus-4-5" and listed["approved"] == []
    said = gatehouse(
        "models", "approve", "claude-opus-4-5", "--reason", "x", "--role", "platform-admin", code=2
    )
    assert "only the security role" in said
    gatehouse("models", "approve", "claude-opus-4-5", "--reason", "reviewed", "--by", "sec@a")
    listed = orjson.loads(gatehouse("models", "list", "--json"))
    assert listed == {"approved": ["claude-opus-4-5"], "setting": [], "proposed": []}
    gatehouse("models", "revoke", "claude-opus-4-5", "--reason", "retired")
    assert "Approved (policy): any" in gatehouse("models", "list")
    gatehouse("models", "revoke", "claude-opus-4-5", "--reason", "again", code=2)
