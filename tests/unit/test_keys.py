import dataclasses
import time

import pytest

from gatehouse.errors import AuthenticationFailed, InvalidRequest
from gatehouse.identity.keys import (
    KeyStore,
    credential_from_headers,
    digest,
    load_secret,
    mint_key,
    parse_duration,
)
from gatehouse.identity.principal import ApiKey

SECRET = b"unit-secret"


class FakeDatabase:
    """Only what KeyStore reads; the real Database is tested in tests/services."""

    def __init__(self, keys: list[ApiKey]) -> None:
        self.keys = keys
        self.revision = 1

    async def keys_revision(self) -> int:
        return self.revision

    async def list_keys(self) -> list[ApiKey]:
        return list(self.keys)


def test_minted_key_is_stored_only_as_digest() -> None:
    new = mint_key(SECRET, email="ada@example.com", team="core", expires_in=60, now=1000.0)
    assert new.secret.startswith(f"ghk_{new.record.id}_")
    assert new.secret not in repr(new.record)
    assert new.record.digest == digest(SECRET, new.secret)
    assert new.record.expires_at == 1060.0


def test_key_must_belong_to_a_human() -> None:
    with pytest.raises(InvalidRequest, match="email"):
        mint_key(SECRET, email="ci-bot")


@pytest.mark.parametrize(("text", "seconds"), [("30d", 2592000), ("12h", 43200), ("90s", 90)])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_nonsense() -> None:
    with pytest.raises(InvalidRequest, match="duration"):
        parse_duration("soon")


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-api-key": "k1"}, "k1"),
        ({"authorization": "Bearer k2"}, "k2"),
        ({"authorization": "bearer  k3 "}, "k3"),
        ({"x-api-key": "k4", "authorization": "Bearer k4"}, "k4"),
        ({"authorization": "Basic abc"}, ""),
        ({}, ""),
    ],
)
def test_credential_from_headers(headers: dict[str, str], expected: str) -> None:
    assert credential_from_headers(headers) == expected


def test_secret_file_is_created_once_with_0600(tmp_path) -> None:  # type: ignore[no-untyped-def]
    first = load_secret("", tmp_path)
    assert load_secret("", tmp_path) == first
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert load_secret("configured", tmp_path) == b"configured"


async def test_keystore_authenticates_and_explains_refusals() -> None:
    now = time.time()
    good = mint_key(SECRET, email="ada@example.com", team="core")
    old = mint_key(SECRET, email="bob@example.com", expires_in=10, now=now - 100)
    gone = mint_key(SECRET, email="eve@example.com")
    revoked = dataclasses.replace(gone.record, revoked_at=now)
    store = KeyStore(FakeDatabase([good.record, old.record, revoked]), SECRET)  # type: ignore[arg-type]
    await store.refresh(force=True)

    principal = store.authenticate({"authorization": f"Bearer {good.secret}"})
    assert (principal.email, principal.team, principal.key_id) == (
        "ada@example.com",
        "core",
        good.record.id,
    )
    with pytest.raises(AuthenticationFailed, match="No Gatehouse key"):
        store.authenticate({})
    with pytest.raises(AuthenticationFailed, match="expired") as expired:
        store.authenticate({"x-api-key": old.secret})
    assert old.secret not in expired.value.message
    with pytest.raises(AuthenticationFailed, match="revoked"):
        store.authenticate({"x-api-key": gone.secret})
    forged = good.secret[:-4] + "AAAA"
    with pytest.raises(AuthenticationFailed, match=f"ghk_{good.record.id}") as unknown:
        store.authenticate({"x-api-key": forged})
    assert forged not in unknown.value.message


async def test_keystore_reloads_only_when_the_revision_moves() -> None:
    db = FakeDatabase([])
    store = KeyStore(db, SECRET)  # type: ignore[arg-type]
    await store.refresh(force=True)
    new = mint_key(SECRET, email="ada@example.com")
    db.keys.append(new.record)
    await store.refresh()
    assert store.lookup(new.secret) is None
    db.revision += 1
    await store.refresh()
    assert store.lookup(new.secret) == new.record
