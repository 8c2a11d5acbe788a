"""store/identity.py on SQLite and PostgreSQL: users, groups, deprovisioning in one transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from gatehouse.identity.directory import Directory
from gatehouse.identity.keys import mint_key
from gatehouse.store import identity as store
from gatehouse.store.db import Database
from gatehouse.store.errors import StoreConflict
from gatehouse.store.schema import revisions

SECRET = b"store-secret"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = await Database.open(database_url)
    try:
        yield database
    finally:
        await database.close()


def user(uid: str, email: str, **kw: object) -> store.User:
    return store.User(
        id=uid, user_name=email, resource={"userName": email}, created_at=float(len(uid)), **kw
    )  # type: ignore[arg-type]


async def revision(db: Database, name: str) -> int:
    rows = await db.fetch_all(select(revisions.c.value).where(revisions.c.name == name), "rev")
    return int(rows[0]["value"])


async def test_users_groups_and_lookup(db: Database) -> None:
    before = await revision(db, "identity")
    await store.create_user(db, user("u1", "Ada@Example.com"))
    await store.create_user(db, user("u22", "bob@example.com", external_id="ext-b"))
    with pytest.raises(StoreConflict):
        await store.create_user(db, user("u333", "ada@example.com"))
    assert await revision(db, "identity") == before + 2
    total, page = await store.find_users(db, user_name="ADA@example.com")
    assert total == 1 and page[0].id == "u1" and page[0].resource == {"userName": "Ada@Example.com"}
    total, page = await store.find_users(db, start=2, count=1)
    assert total == 2 and [u.id for u in page] == ["u22"]
    assert (await store.find_users(db, external_id="ext-b"))[1][0].id == "u22"
    await store.create_group(
        db, store.Group(id="g1", display_name="team-core", members=("u1", "u22"))
    )
    await store.create_group(db, store.Group(id="g2", display_name="gh-sec", members=("u1",)))
    with pytest.raises(StoreConflict):
        await store.create_group(db, store.Group(id="g3", display_name="team-core"))
    directory = Directory.parse("security=gh-sec")
    assert await store.lookup(db, "ada@example.com", directory) == (
        "core",
        ("security", "developer"),
        True,
    )
    saved = await store.save_group(
        db, store.Group(id="g1", display_name="team-search", members=("u22",))
    )
    assert saved.members == ("u22",)
    assert (await store.get_group(db, "g1")).members == ("u22",)  # type: ignore[union-attr]
    assert await store.lookup(db, "ada@example.com", directory) == (
        "",
        ("security", "developer"),
        True,
    )
    assert (await store.find_groups(db, display_name="team-search"))[0] == 1
    assert await store.delete_group(db, "g1") and not await store.delete_group(db, "g1")
    assert await store.existing_user_ids(db, ["u1", "nope"]) == {"u1"}


async def test_deactivation_revokes_keys_and_records_why(db: Database) -> None:
    await store.create_user(db, user("u1", "ada@example.com"))
    own = mint_key(SECRET, email="Ada@example.com", now=1.0)
    service = mint_key(SECRET, email="ada@example.com", service="ci", now=1.0)
    other = mint_key(SECRET, email="bob@example.com", now=1.0)
    for new in (own, service, other):
        await db.insert_key(new.record)
    keys_before = await revision(db, "keys")
    saved, gone = await store.save_user(db, user("u1", "ada@example.com", active=False), now=100.0)
    assert saved.deactivated_at == 100.0 and not saved.active
    assert gone is not None and sorted(gone.key_ids) == sorted([own.record.id, service.record.id])
    assert gone.services == ("ci",)
    assert await revision(db, "keys") == keys_before + 1
    revoked = {k.id: k.revoked_at for k in await db.list_keys()}
    assert revoked == {own.record.id: 100.0, service.record.id: 100.0, other.record.id: None}
    assert await store.deprovisioned(db) == {"ada@example.com": 100.0}
    [event] = await db.query_events(kind=store.DEPROVISIONED)
    assert event.developer == "ada@example.com" and event.detail["services"] == ["ci"]
    # Saving again while inactive deprovisions nothing new; reactivation un-revokes nothing.
    assert (await store.save_user(db, user("u1", "ada@example.com", active=False)))[1] is None
    again, _ = await store.save_user(db, user("u1", "ada@example.com"), now=200.0)
    assert again.active and again.deactivated_at is None
    assert await store.deprovisioned(db) == {}
    assert {k.id: k.revoked_at for k in await db.list_keys()}[own.record.id] == 100.0


async def test_deletion_counts_until_provisioned_again(db: Database) -> None:
    await store.create_user(db, user("u1", "ada@example.com"))
    await store.create_group(db, store.Group(id="g1", display_name="team-core", members=("u1",)))
    gone = await store.delete_user(db, "u1", now=50.0)
    assert gone is not None and gone.key_ids == ()
    assert await store.get_user(db, "u1") is None
    assert (await store.get_group(db, "g1")).members == ()  # type: ignore[union-attr]
    assert await store.delete_user(db, "u1") is None
    assert await store.deprovisioned(db) == {"ada@example.com": 50.0}
    await store.create_user(db, user("u2", "ada@example.com"))
    assert await store.deprovisioned(db) == {}
