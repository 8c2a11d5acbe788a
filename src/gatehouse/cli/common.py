"""What every `gatehouse` sub-command shares: the consoles, the database, refusals."""

from __future__ import annotations

import contextlib
import getpass
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

import typer
import uvloop
from rich.console import Console
from rich.markup import escape

from gatehouse.errors import GatewayError
from gatehouse.settings import Settings
from gatehouse.store.db import Database

T = TypeVar("T")

# Piped output keeps whole lines: a key or a table row cut at 80 columns is useless.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, soft_wrap=True)


def fail(message: str) -> None:
    """Print one error line; messages quote what was typed, so never read them as markup."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """Bad input, settings or an unreachable database: one line on stderr and exit status 2."""
    try:
        yield
    except GatewayError as exc:
        fail(exc.message)
        raise typer.Exit(2) from None


@contextlib.asynccontextmanager
async def database(settings: Settings) -> AsyncIterator[Database]:
    db = await Database.open(settings.resolved_database_url)
    try:
        yield db
    finally:
        await db.close()


def run(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion on uvloop."""

    async def wrapper() -> T:
        return await coro

    return uvloop.run(wrapper())


def os_user() -> str:
    """Who runs the command, for ``--by`` defaults: the OS user name."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers)
        return "unknown"


def with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run ``work(db)`` on a freshly opened database, closed afterwards."""

    async def go() -> T:
        async with database(settings) as db:
            return await work(db)

    return run(go())
