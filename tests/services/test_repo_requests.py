"""Repository access requests over real storage, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from gatehouse.errors import PermissionDenied
from gatehouse.identity.principal import Principal
from gatehouse.policy import requests
from gatehouse.store import identity as identity_store
from gatehouse.store.db import Database
from gatehouse.store.errors import StoreConflict
from gatehouse.store.policy import PolicyStore
from gatehouse.store.repo_requests import APPROVED, DENIED, PENDING, RepoRequest, RepoRequestStore

DEV = Principal(email="ada@example.com", team="payments")
SECURITY = Principal(email="sec@example.com", roles=("security",))
OWNER = Principal(email="owner@example.com", roles=("developer",))


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    db = await Database.open(database_url)
    yield db
    await db.close()


async def test_one_pending_request_per_repository_and_a_decision_wins_once(db: Database) -> None:
    store = RepoRequestStore(db)
    first = await store.add(RepoRequest("github.com/acme/pay", "ada@example.com", "on call"))
    again = await store.add(RepoRequest("github.com/acme/pay", "bob@example.com", "me too"))
    assert again == first
    assert await store.pending_for("github.com/acme/pay") == first
    decided = replace(
        first,
        status=APPROVED,
        decided_by="sec@example.com",
        decided_at=first.created_at + 1,
        classification="internal",
        paths=({"glob": "secrets/**", "action": "block", "name": "secrets"},),
    )
    assert await store.decide(decided)
    assert not await store.decide(replace(decided, status=DENIED))  # no longer pending
    assert await store.get(first.id) == decided
    assert await store.find(status=PENDING) == []
    assert await store.find(requested_by="ada@example.com") == [decided]


async def test_request_approve_lands_in_the_policy_with_its_history(db: Database) -> None:
    policy = PolicyStore(db)
    made = await requests.request_access(db, policy, DEV, "git@github.com:Acme/Payments.git", "fix")
    assert (made.repository, made.status) == ("github.com/acme/payments", PENDING)
    with pytest.raises(StoreConflict, match=r"already requested by ada@example\.com"):
        await requests.request_access(db, policy, DEV, "github.com/acme/payments", "again")

    decided = await requests.approve(
        db,
        policy,
        SECURITY,
        "github.com/acme/payments",
        classification="confidential",
        paths=[{"glob": "**/.env*", "action": "redact", "name": "env files"}],
        reason="payments team repo",
    )
    assert (decided.status, decided.decided_by) == (APPROVED, "sec@example.com")
    rule = (await policy.current())[1].rule_for("github.com/acme/payments")
    assert rule is not None
    assert (rule.classification, rule.approved_by) == ("confidential", "sec@example.com")
    assert [(p.glob, p.action, p.name) for p in rule.paths] == [("**/.env*", "redact", "env files")]
    latest = (await policy.history())[0]
    assert latest.author == "sec@example.com"
    assert "payments team repo" in latest.reason

    with pytest.raises(StoreConflict, match="already allowed"):
        await requests.request_access(db, policy, DEV, "github.com/acme/payments", "again")
    [seen] = await requests.status(db, "ada@example.com")
    assert (seen.status, seen.classification) == (APPROVED, "confidential")
    kinds = [e.kind for e in await db.query_events()]
    assert kinds.count("repo_access_requested") == 1 and kinds.count("repo_access_approved") == 1


async def test_an_owner_group_member_decides_and_others_may_not(db: Database) -> None:
    policy = PolicyStore(db)
    await policy.change(
        lambda p: p.replace(owners={"github.com/acme": "acme-owners"}),
        author="sec@example.com",
        reason="acme owns its repos",
        source="api",
    )
    await identity_store.create_user(db, identity_store.User(id="u1", user_name=OWNER.email))
    await identity_store.create_group(
        db, identity_store.Group(id="g1", display_name="Acme-Owners", members=("u1",))
    )
    await requests.request_access(db, policy, DEV, "github.com/acme/search", "search work")
    with pytest.raises(PermissionDenied, match="owner is the IdP group acme-owners"):
        await requests.deny(db, policy, DEV, "github.com/acme/search", reason="no")
    decided = await requests.deny(
        db, policy, OWNER, "github.com/acme/search", reason="use the mirror"
    )
    assert (decided.status, decided.decided_by) == (DENIED, OWNER.email)

    await requests.request_access(db, policy, DEV, "gitlab.com/other/tool", "tooling")
    with pytest.raises(PermissionDenied, match="only the security role"):
        await requests.approve(db, policy, OWNER, "gitlab.com/other/tool", classification="public")
    # Refused before anything is written: no request appears for a repository nobody asked for.
    with pytest.raises(PermissionDenied):
        await requests.approve(db, policy, OWNER, "gitlab.com/other/new", classification="public")
    assert await RepoRequestStore(db).pending_for("gitlab.com/other/new") is None
    # Inside its organisation the owner may allow a repository nobody asked for yet.
    made = await requests.approve(db, policy, OWNER, "github.com/acme/new", classification="public")
    assert (made.requested_by, made.status) == (OWNER.email, APPROVED)
