"""What the admin API reads from the running gateway: one small interface.

`gatehouse.app.Services` implements it; tests may hand in anything that does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from gatehouse.audit.crypto import Keyring
from gatehouse.identity.principal import Principal
from gatehouse.ledger.prices import PriceTable
from gatehouse.store.db import Database


class Backend(Protocol):
    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The principal behind a request's credential, or `AuthenticationFailed`."""

    @property
    def database(self) -> Database: ...

    @property
    def prices(self) -> PriceTable: ...

    @property
    def audit_keyring(self) -> Keyring | None:
        """The keys that decrypt audit blocks (GATEHOUSE_AUDIT_KEY_FILE); None without."""

    @property
    def redis_url(self) -> str:
        """Where changes are announced to every replica; empty without Redis."""
