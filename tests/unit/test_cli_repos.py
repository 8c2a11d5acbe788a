"""`gatehouse repos …` on a SQLite data directory: request, decide, see the outcome."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from gatehouse.cli.main import app
from gatehouse.policy.document import Policy
from gatehouse.store.db import Database
from gatehouse.store.policy import PolicyStore, PolicyVersion

Run = Callable[..., str]


@pytest.fixture
def repos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    for name in list(os.environ):
        if name.startswith("GATEHOUSE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GATEHOUSE_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def run(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, ["repos", *args])
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    return run


async def _policy(tmp_path: Path) -> tuple[Policy, PolicyVersion]:
    db = await Database.open(f"sqlite+aiosqlite:///{tmp_path / 'data' / 'gatehouse.db'}")
    try:
        store = PolicyStore(db)
        return (await store.current())[1], (await store.history())[0]
    finally:
        await db.close()


def test_request_approve_status(repos: Run, tmp_path: Path) -> None:
    said = repos(
        "request", "git@github.com:acme/pay.git", "--reason", "on call", "--as", "ada@x.io"
    )
    assert "Requested github.com/acme/pay" in said and "pending" in said
    said = repos("request", "github.com/acme/pay", "--reason", "me too", "--as", "bob@x.io", code=2)
    assert "already requested by ada@x.io" in said
    [pending] = [
        orjson.loads(line) for line in repos("list", "--status", "pending", "--json").splitlines()
    ]
    assert pending["requested_by"] == "ada@x.io"

    paths = tmp_path / "paths.yaml"
    paths.write_text(
        "- {glob: 'secrets/**', action: block, name: secrets}\n"
        "- glob: '**/.env*'\n  action: redact\n"
    )
    said = repos(
        "approve", "github.com/acme/pay", "--classification", "confidential",
        "--paths-file", str(paths), "--reason", "payments on-call", "--by", "sec@x.io",
    )  # fmt: skip
    assert "Allowed github.com/acme/pay (confidential) with 2 path rule(s) for ada@x.io" in said

    policy, latest = asyncio.run(_policy(tmp_path))
    rule = policy.rule_for("github.com/acme/pay")
    assert rule is not None and rule.approved_by == "sec@x.io"
    assert [(p.glob, p.action, p.name) for p in rule.paths] == [
        ("secrets/**", "block", "secrets"),
        ("**/.env*", "redact", "**/.env*"),
    ]
    assert (latest.author, latest.source) == ("sec@x.io", "cli")
    assert "payments on-call" in latest.reason

    [row] = [
        orjson.loads(line)
        for line in repos("status", "--developer", "ada@x.io", "--json").splitlines()
    ]
    assert (row["status"], row["decided_by"], row["classification"]) == (
        "approved", "sec@x.io", "confidential",
    )  # fmt: skip
    assert "already allowed" in repos(
        "request", "github.com/acme/pay", "--reason", "x", "--as", "bob@x.io", code=2
    )


def test_deny_and_bad_input_are_one_line(repos: Run, tmp_path: Path) -> None:
    repos("request", "github.com/acme/search", "--reason", "search work", "--as", "ada@x.io")
    said = repos("deny", "github.com/acme/search", "--reason", "use the mirror", "--by", "sec@x.io")
    assert "Denied github.com/acme/search to ada@x.io (use the mirror)" in said
    assert "denied" in repos("status", "--developer", "ada@x.io")
    bad_paths = tmp_path / "bad.yaml"
    bad_paths.write_text("- glob: 'x/**'\n  action: hide\n")
    approve = ("approve", "github.com/acme/x", "--classification")
    for args, fragment in (
        (("request", "payments", "--reason", "x"), "host/owner/name"),
        ((*approve, "secret"), "classification"),
        ((*approve, "internal", "--paths-file", str(bad_paths)), "redact or block"),
        ((*approve, "internal", "--paths-file", "/nope"), "--paths-file"),
        (("deny", "github.com/acme/x", "--reason", "no"), "no pending request"),
        (("list", "--status", "maybe"), "status must be one of"),
    ):  # fmt: skip
        said = repos(*args, code=2)
        assert fragment in said, said
        assert said.count("\n") == 1, said
