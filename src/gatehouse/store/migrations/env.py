"""Alembic environment for Gatehouse.

At run time Gatehouse drives Alembic itself (``gatehouse.store.migrate``) and
hands this script an open connection in ``config.attributes["connection"]``;
no ``alembic.ini`` is read.  A developer writing a new revision can still use
the Alembic command line by pointing ``sqlalchemy.url`` at a scratch database::

    alembic -x url=sqlite+aiosqlite:///scratch.db revision --autogenerate -m "..."

with a throwaway ``alembic.ini`` whose ``script_location`` is this directory.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from gatehouse.store.schema import metadata


def run_with(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_from_url(url: str) -> None:
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(run_with)
    finally:
        await engine.dispose()


def main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        run_with(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option(
        "sqlalchemy.url"
    )
    if not url:
        raise RuntimeError("pass -x url=... or set sqlalchemy.url to run Alembic by hand")
    asyncio.run(run_from_url(url))


main()
