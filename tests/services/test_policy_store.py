"""The versioned policy store on SQLite and PostgreSQL: versions, history, no lost updates."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator

import orjson
import pytest

from gatehouse.errors import NotFound
from gatehouse.policy.document import ModelList, Policy, RepoRule
from gatehouse.store.db import Database
from gatehouse.store.policy import PolicyStore


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url)
    try:
        yield database
    finally:
        await database.close()


def test_the_migration_writes_the_default_policy() -> None:
    migration = importlib.import_module("gatehouse.store.migrations.versions.0005_policy")
    # Sections added since (guardrails) read as their defaults.
    assert Policy.from_dict(orjson.loads(migration.DEFAULT_POLICY)) == Policy()


async def test_version_zero_is_the_default_deny_all_policy(db: Database) -> None:
    store = PolicyStore(db)
    assert await store.current() == (0, Policy())
    assert await store.revision() == 0
    [first] = await store.history()
    assert (first.version, first.author) == (0, "gatehouse")


async def test_changes_are_versions_with_who_and_why(db: Database) -> None:
    store = PolicyStore(db)
    rule = RepoRule("internal", approved_by="sec@acme.com")
    version, policy = await store.change(
        lambda p: p.replace(repositories={"github.com/acme/pay": rule}),
        author="sec@acme.com",
        reason="SEC-1",
        source="api",
    )
    assert version == 1 and policy.repositories["github.com/acme/pay"] == rule
    assert await store.current() == (1, policy)
    assert await store.revision() == 1
    # Nothing changes: no new version.
    assert await store.apply(policy, author="x", reason="same", source="file") == (1, policy)
    version, _ = await store.apply(Policy(), author="ops@acme.com", reason="reset", source="file")
    assert version == 2
    history = await store.history()
    assert [(v.version, v.author, v.source) for v in history] == [
        (2, "ops@acme.com", "file"),
        (1, "sec@acme.com", "api"),
        (0, "gatehouse", "file"),
    ]
    [event, _] = await db.query_events(kind="policy_changed")
    assert event.detail["version"] == 2
    assert event.detail["changes"] == ["- repository github.com/acme/pay"]


async def test_a_refused_change_changes_nothing(db: Database) -> None:
    store = PolicyStore(db)

    def refuse(policy: Policy) -> Policy:
        raise NotFound("no such thing")

    with pytest.raises(NotFound):
        await store.change(refuse, author="x", reason="y", source="cli")
    assert await store.current() == (0, Policy())
    assert await store.revision() == 0


async def test_concurrent_changes_are_never_lost(db: Database) -> None:
    """Twenty writers each add one model at once: every one lands, in twenty versions."""
    store = PolicyStore(db)

    async def add(n: int) -> None:
        def mutate(policy: Policy) -> Policy:
            approved = (*policy.models.approved, f"model-{n}")
            return policy.replace(models=ModelList(approved))

        await store.change(mutate, author=f"w{n}", reason="race", source="api")

    await asyncio.gather(*(add(n) for n in range(20)))
    version, policy = await store.current()
    assert version == 20
    assert sorted(policy.models.approved) == sorted(f"model-{n}" for n in range(20))
