"""`gatehouse repos request|approve|deny|list|status`: the self-serve repository allow-list.

An operator tool with database access, like `gatehouse budget`: it records who
acts (``--as``/``--by``, default your OS user) but does not check their roles.
Roles are enforced by the admin API (``/admin/api/v1/repos/…``), where the
caller is authenticated; there only security or the repository's owner group
may decide.  Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table

from gatehouse.cli.common import err, os_user, out, refusals, with_database
from gatehouse.errors import InvalidRequest
from gatehouse.identity.principal import Principal
from gatehouse.policy import requests
from gatehouse.settings import Settings
from gatehouse.store.policy import PolicyStore
from gatehouse.store.repo_requests import RepoRequest

app = typer.Typer(
    help="Request repositories for the allow-list; approve or deny them with a classification.",
    no_args_is_help=True,
)

Repository = Annotated[
    str,
    typer.Argument(
        help="host/owner/name (github.com/acme/payments), a git remote, or a request id."
    ),
]
By = Annotated[
    str | None, typer.Option("--by", help="Who decides, as recorded (default: your OS user).")
]
AsJson = Annotated[bool, typer.Option("--json", help="JSON lines, one request each.")]


@app.command("request")
def request(
    repository: Repository,
    reason: Annotated[str, typer.Option("--reason", help="Why you need it: the owner reads it.")],
    as_email: Annotated[
        str | None, typer.Option("--as", help="Whose request, as recorded (default: your OS user).")
    ] = None,
) -> None:
    """Ask for a repository on the allow-list; it stays pending until its owner decides."""
    with refusals():
        who = Principal(email=as_email or os_user())
        settings = Settings.load()
        made = with_database(
            settings,
            lambda db: requests.request_access(
                db, PolicyStore(db, settings.redis_url), who, repository, reason
            ),
        )
    out.print(
        f"Requested {made.repository} (request {made.id}); pending with its "
        "data-classification owner. Check with: gatehouse repos status",
        highlight=False,
    )


@app.command("approve")
def approve(
    repository: Repository,
    classification: Annotated[
        str,
        typer.Option("--classification", help="public, internal, confidential or restricted."),
    ],
    paths_file: Annotated[
        Path | None,
        typer.Option("--paths-file", help="YAML or JSON list of {glob, action, name} path rules."),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="Why, kept in the policy history.")] = "",
    by: By = None,
) -> None:
    """Allow a repository with a classification (and path rules), deciding its request."""
    with refusals():
        paths = _read_paths(paths_file)
        who = Principal(email=by or os_user())
        settings = Settings.load()
        decided = with_database(
            settings,
            lambda db: requests.approve(
                db,
                PolicyStore(db, settings.redis_url),
                who,
                repository,
                classification=classification,
                paths=paths,
                reason=reason,
                source="cli",
                check_roles=False,
            ),
        )
    rules = f" with {len(decided.paths)} path rule(s)" if decided.paths else ""
    out.print(
        f"Allowed {decided.repository} ({decided.classification}){rules} for "
        f"{decided.requested_by}; decided by {decided.decided_by}.",
        highlight=False,
    )


@app.command("deny")
def deny(
    repository: Repository,
    reason: Annotated[str, typer.Option("--reason", help="Why: the developer sees it.")],
    by: By = None,
) -> None:
    """Refuse a pending request, with a reason the developer sees."""
    with refusals():
        who = Principal(email=by or os_user())
        settings = Settings.load()
        decided = with_database(
            settings,
            lambda db: requests.deny(
                db,
                PolicyStore(db, settings.redis_url),
                who,
                repository,
                reason=reason,
                check_roles=False,
            ),
        )
    out.print(
        f"Denied {decided.repository} to {decided.requested_by} ({decided.decision_reason}).",
        highlight=False,
    )


@app.command("list")
def list_requests(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only pending, approved, denied or withdrawn requests."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Repository requests, newest first."""
    with refusals():
        settings = Settings.load()
        found = with_database(settings, lambda db: requests.list_requests(db, status=status))
    _show(found, as_json)


@app.command("status")
def status(
    developer: Annotated[
        str | None,
        typer.Option("--developer", help="Whose requests (default: your OS user)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Your requests and what was decided: by whom, when, why."""
    with refusals():
        settings = Settings.load()
        who = developer or os_user()
        found = with_database(settings, lambda db: requests.status(db, who))
    if not found and not as_json:
        err.print(f"No repository requests by {who}.", highlight=False)
    _show(found, as_json)


def _read_paths(path: Path | None) -> tuple[dict[str, str], ...]:
    if path is None:
        return ()
    try:
        text = path.read_text()
    except OSError as exc:
        raise InvalidRequest(f"--paths-file {path}: {exc.strerror or exc}") from None
    return requests.parse_paths(text, source=str(path))


def _show(found: Sequence[RepoRequest], as_json: bool) -> None:
    if as_json:
        for item in found:
            sys.stdout.write(orjson.dumps(item.to_json()).decode() + "\n")
        return
    table = Table("id", "repository", "requested by", "status", "decided by", "why", "when")
    for item in found:
        why = item.decision_reason or item.reason
        if item.classification:
            why = f"{item.classification}: {why}"
        table.add_row(
            item.id,
            item.repository,
            item.requested_by,
            item.status,
            item.decided_by or "-",
            why,
            _utc(item.decided_at or item.created_at),
        )
    out.print(table)


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))
