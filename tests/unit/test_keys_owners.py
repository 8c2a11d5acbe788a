"""Service keys and the deprovisioned-owner refusal of identity/keys.py."""

from collections.abc import Mapping

import pytest

from gatehouse.errors import AuthenticationFailed, InvalidRequest
from gatehouse.identity.keys import KeyStore, mint_key
from gatehouse.identity.principal import ApiKey
from tests.unit.test_keys import FakeDatabase

SECRET = b"unit-secret"


def test_a_service_key_names_its_service_and_attributes_to_the_owner() -> None:
    new = mint_key(SECRET, email="ada@example.com", team="core", service="nightly-ci")
    assert new.record.service == "nightly-ci"
    principal = new.record.principal()
    assert principal.email == "ada@example.com" and principal.team == "core"
    with pytest.raises(InvalidRequest):
        mint_key(SECRET, email="ada@example.com", service="a,b")


async def test_keys_of_a_deprovisioned_owner_are_refused_with_the_reason() -> None:
    own = mint_key(SECRET, email="Ada@example.com", now=10.0)
    service = mint_key(SECRET, email="ada@example.com", service="nightly-ci", now=10.0)
    later = mint_key(SECRET, email="ada@example.com", now=200.0)
    gone: dict[str, float] = {}

    async def deprovisioned() -> Mapping[str, float]:
        return gone

    records: list[ApiKey] = [own.record, service.record, later.record]
    store = KeyStore(FakeDatabase(records), SECRET, deprovisioned=deprovisioned)  # type: ignore[arg-type]
    await store.refresh(force=True)
    assert store.authenticate({"x-api-key": own.secret}).email == "Ada@example.com"
    gone["ada@example.com"] = 100.0
    await store.refresh(force=True)
    with pytest.raises(AuthenticationFailed, match="was deprovisioned by your identity provider"):
        store.authenticate({"x-api-key": own.secret})
    with pytest.raises(AuthenticationFailed, match=r"service key .*\(nightly-ci\).*its owner"):
        store.authenticate({"x-api-key": service.secret})
    # A key a platform admin created after the deprovisioning (and not revoked) works.
    assert store.authenticate({"x-api-key": later.secret}).email == "ada@example.com"
