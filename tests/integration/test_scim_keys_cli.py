"""`gatehouse keys create` and SCIM: teams from the IdP's groups, service keys, refusals."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from gatehouse.cli.main import app
from gatehouse.settings import Settings
from gatehouse.store import identity as identity_store
from gatehouse.store.db import Database


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ada (active, in team-payments) and bob (deactivated) in a fresh SQLite database."""
    for name in ("GATEHOUSE_CONFIG", "GATEHOUSE_DATABASE_URL", "GATEHOUSE_REDIS_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GATEHOUSE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GATEHOUSE_SECRET_KEY", "cli-secret")

    async def provision() -> None:
        db = await Database.open(Settings.load().resolved_database_url)
        try:
            for uid, email, active in (
                ("u1", "ada@example.com", True),
                ("u2", "bob@example.com", False),
            ):
                user = identity_store.User(
                    id=uid, user_name=email, active=active, resource={"userName": email}
                )
                await identity_store.create_user(db, user)
            group = identity_store.Group(id="g1", display_name="team-payments", members=("u1",))
            await identity_store.create_group(db, group)
        finally:
            await db.close()

    asyncio.run(provision())


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result


def listed() -> list[dict[str, object]]:
    return [orjson.loads(line) for line in run("keys", "list", "--json").stdout.splitlines()]


def test_a_scim_users_key_takes_the_team_from_their_groups(directory: None) -> None:
    run("keys", "create", "--user", "ada@example.com", "--json")
    run("keys", "create", "--user", "ada@example.com", "--team", "override", "--json")
    assert [k["team"] for k in listed()] == ["payments", "override"]


def test_service_keys_name_their_owner(directory: None) -> None:
    created = run("keys", "create", "--service", "nightly-ci", "--owner", "ada@example.com")
    assert (
        "Service key" in created.stdout
        and "(nightly-ci) owned by ada@example.com" in created.stdout
    )
    [key] = listed()
    assert key["user"] == "ada@example.com" and key["service"] == "nightly-ci"
    assert key["team"] == "payments"
    table = run("keys", "list").stdout
    assert "nightly-ci" in table


def test_a_service_key_needs_an_owner(directory: None) -> None:
    refused = run("keys", "create", "--service", "nightly-ci", code=2)
    assert "--owner" in refused.stderr
    refused = run("keys", "create", "--user", "a@example.com", "--owner", "b@example.com", code=2)
    assert "same human" in refused.stderr


def test_no_key_for_a_deactivated_human(directory: None) -> None:
    refused = run("keys", "create", "--user", "BOB@example.com", code=2)
    assert "deprovisioned" in refused.stderr
    assert listed() == []
