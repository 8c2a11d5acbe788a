"""Run the Alembic migrations shipped in ``gatehouse/store/migrations``.

No ``alembic.ini`` is involved: the configuration is built here and the
migration runs on a connection the caller already holds, so it shares the
caller's transaction (and, on PostgreSQL, its advisory lock).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection

MIGRATIONS = Path(__file__).with_name("migrations")

# Arbitrary but fixed: every Gatehouse replica contends for the same lock, so
# only one of them migrates while the others wait and then find nothing to do.
ADVISORY_LOCK_ID = 0x6761746568  # "gateh"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(connection: Connection) -> None:
    """Bring the database to the newest revision, inside the connection's transaction.

    On PostgreSQL the transaction first takes an advisory lock, released at
    commit; DDL there is transactional, so a failed migration leaves nothing
    behind.  On SQLite the caller begins the transaction with ``BEGIN
    IMMEDIATE``, which serialises writers in the same way.
    """
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": ADVISORY_LOCK_ID})
    command.upgrade(alembic_config(connection), "head")
