"""Errors raised by the storage layer.

    GatewayError
     └── StoreError                  (503) the database or the spool failed
          ├── StoreConflict          (409) a unique value (key id, digest) already exists
          └── SpoolError             a record could not be made durable
               └── SpoolLocked       another process holds the spool directory

Driver exceptions (SQLAlchemy, asyncpg, aiosqlite, OS errors) are mapped to
these at the boundary of ``gatehouse.store`` and chained with ``from exc``;
their messages never carry a password from the database URL.
"""

from __future__ import annotations

from gatehouse.errors import GatewayError


class StoreError(GatewayError):
    """The database or the spool could not do what was asked."""

    status = 503
    error_type = "api_error"
    should_retry: bool | None = None


class StoreConflict(StoreError):
    """An insert collided with an existing unique value."""

    status = 409
    error_type = "invalid_request_error"
    should_retry = False


class SpoolError(StoreError):
    """A record could not be written durably to the spool."""


class SpoolLocked(SpoolError):
    """Another process already holds the spool directory."""
