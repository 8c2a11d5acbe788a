"""`gatehouse policy|killswitch|models`: security's vetoes and policy as code.

The CLI is an operator tool with database access: it says who acts with
``--by`` (default: the OS user) and in which role with ``--role`` (security
or platform-admin), and the change is recorded with both.  Roles are checked
the same way as in the admin API (policy/service.py), where they come from a
signed-in principal instead.  Every change is a new policy version, recorded
as an event and announced on Redis, so running gateways apply it within a
second.  Bad input is one line on stderr and exit status 2.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.markup import escape
from rich.table import Table

from gatehouse.cli.common import err, os_user, out, refusals, with_database
from gatehouse.errors import InvalidRequest
from gatehouse.identity.principal import Principal
from gatehouse.identity.roles import PLATFORM_ADMIN, SECURITY
from gatehouse.policy import service
from gatehouse.policy.document import KillSwitch, diff, dump_yaml, load_yaml
from gatehouse.settings import Settings
from gatehouse.store.db import Database
from gatehouse.store.policy import PolicyStore

policy_app = typer.Typer(
    help="The whole policy as YAML: export, diff, apply, history.", no_args_is_help=True
)
killswitch_app = typer.Typer(
    help="Security's incident kill switch: global, team, repository or developer.",
    no_args_is_help=True,
)
models_app = typer.Typer(
    help="The vendor-risk model list: platform proposes, security approves.",
    no_args_is_help=True,
)

By = Annotated[
    str | None, typer.Option("--by", help="Who makes the change (default: your OS user).")
]
Role = Annotated[
    str,
    typer.Option("--role", help="The role you act in: security or platform-admin."),
]
Reason = Annotated[str, typer.Option("--reason", help="Why; recorded with the change.")]
AsJson = Annotated[bool, typer.Option("--json", help="JSON instead of a table.")]

APPLIED = (
    "[dim]Running gateways apply it within GATEHOUSE_POLICY_REFRESH_INTERVAL "
    "(at once with GATEHOUSE_REDIS_URL).[/dim]"
)


def _caller(by: str | None, role: str) -> Principal:
    if role not in (SECURITY, PLATFORM_ADMIN):
        raise InvalidRequest(f"--role must be security or platform-admin, not {role!r}")
    return Principal(email=by or os_user(), roles=(role,))


def _store(db: Database, settings: Settings) -> PolicyStore:
    return PolicyStore(db, settings.redis_url)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M UTC") if ts else "-"


# -- policy ----------------------------------------------------------------------------


@policy_app.command("export")
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE instead of stdout.")
    ] = None,
) -> None:
    """The policy in force as YAML (review it, keep it in git, apply it back)."""
    with refusals():
        settings = Settings.load()
        version, policy = with_database(settings, lambda db: _store(db, settings).current())
    text = f"# version {version}\n" + dump_yaml(policy)
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text)
    err.print(f"Policy version {version} written to {escape(str(output))}.", highlight=False)


@policy_app.command("diff")
def diff_file(file: Annotated[Path, typer.Argument(help="A policy YAML file.")]) -> None:
    """What applying FILE would change, one line per change."""
    with refusals():
        wanted = load_yaml(_read(file), str(file))
        settings = Settings.load()
        version, current = with_database(settings, lambda db: _store(db, settings).current())
    changes = diff(current, wanted)
    if not changes:
        out.print(f"{file} matches policy version {version}: nothing to apply.", highlight=False)
        return
    out.print(f"From policy version {version} to {file}:", highlight=False)
    for line in changes:
        out.print("  " + escape(line), highlight=False)


@policy_app.command("apply")
def apply(
    file: Annotated[Path, typer.Argument(help="A policy YAML file.")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why; recorded with the new version.")
    ] = "",
    by: By = None,
    role: Role = SECURITY,
) -> None:
    """Make FILE the policy in force (a new version); an invalid file changes nothing."""
    with refusals():
        wanted = load_yaml(_read(file), str(file))
        caller = _caller(by, role)
        settings = Settings.load()

        async def work(db: Database) -> tuple[int, int, list[str]]:
            store = _store(db, settings)
            before, current = await store.current()
            version, _ = await service.apply_policy(
                store, caller, wanted, reason=reason or f"applied {file.name}", source="file"
            )
            return before, version, diff(current, wanted)

        before, version, changes = with_database(settings, work)
    if version == before:
        out.print(f"{file} matches policy version {version}: nothing changed.", highlight=False)
        return
    out.print(f"Policy version {version} applied from {file}:", highlight=False)
    for line in changes:
        out.print("  " + escape(line), highlight=False)
    err.print(APPLIED)


@policy_app.command("history")
def history(
    limit: Annotated[int, typer.Option("--limit", help="How many versions, newest first.")] = 20,
    as_json: AsJson = False,
) -> None:
    """Every policy version: who changed it, why, from where (api, cli, file)."""
    with refusals():
        settings = Settings.load()
        versions = with_database(settings, lambda db: _store(db, settings).history(limit))
    if as_json:
        for v in versions:
            row = {
                "version": v.version,
                "author": v.author,
                "reason": v.reason,
                "source": v.source,
                "created_at": v.created_at,
            }
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return
    table = Table("version", "when", "by", "source", "reason")
    for v in versions:
        table.add_row(str(v.version), _when(v.created_at), v.author, v.source, v.reason)
    out.print(table)


def _read(file: Path) -> str:
    try:
        return file.read_text()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {file}: {exc.strerror or exc}") from None


# -- kill switch -------------------------------------------------------------------------

Scope = Annotated[
    str,
    typer.Option(
        "--scope", help="global, team:NAME, repository:HOST/OWNER/NAME or developer:EMAIL."
    ),
]
OnBehalfOf = Annotated[
    str | None,
    typer.Option(
        "--on-behalf-of",
        help="Security's email when platform-admin acts on security's instruction.",
    ),
]


@killswitch_app.command("on")
def killswitch_on(
    scope: Scope,
    reason: Reason,
    show_reason: Annotated[
        bool, typer.Option("--show-reason", help="Show the reason to the developers refused.")
    ] = False,
    by: By = None,
    role: Role = SECURITY,
    on_behalf_of: OnBehalfOf = None,
) -> None:
    """Throw the kill switch: every request in SCOPE is refused within a second."""
    with refusals():
        caller = _caller(by, role)
        settings = Settings.load()
        switch = with_database(
            settings,
            lambda db: service.throw_killswitch(
                _store(db, settings),
                caller,
                scope=scope,
                reason=reason,
                show_reason=show_reason,
                on_behalf_of=on_behalf_of,
                source="cli",
            ),
        )
    shown = "shown to developers" if switch.show_reason else "not shown to developers"
    out.print(
        f"Kill switch ON for {switch.scope} (reason {shown}): {escape(switch.reason)}",
        highlight=False,
    )
    err.print(APPLIED)


@killswitch_app.command("off")
def killswitch_off(
    scope: Scope,
    reason: Reason,
    by: By = None,
    role: Role = SECURITY,
    on_behalf_of: OnBehalfOf = None,
) -> None:
    """Lift the kill switch on SCOPE."""
    with refusals():
        caller = _caller(by, role)
        settings = Settings.load()
        switch = with_database(
            settings,
            lambda db: service.lift_killswitch(
                _store(db, settings),
                caller,
                scope=scope,
                reason=reason,
                on_behalf_of=on_behalf_of,
                source="cli",
            ),
        )
    out.print(f"Kill switch OFF for {switch.scope}.", highlight=False)
    err.print(APPLIED)


@killswitch_app.command("list")
def killswitch_list(as_json: AsJson = False) -> None:
    """The kill switches thrown now."""
    with refusals():
        settings = Settings.load()
        _, policy = with_database(settings, lambda db: _store(db, settings).current())
    if as_json:
        sys.stdout.write(orjson.dumps([_switch(k) for k in policy.killswitches]).decode() + "\n")
        return
    if not policy.killswitches:
        out.print("No kill switch is thrown.")
        return
    table = Table("scope", "since", "by", "on behalf of", "reason", "shown")
    for k in policy.killswitches:
        table.add_row(
            k.scope,
            _when(k.at),
            k.thrown_by,
            k.on_behalf_of or "-",
            k.reason,
            "yes" if k.show_reason else "no",
        )
    out.print(table)


def _switch(k: KillSwitch) -> dict[str, object]:
    return {
        "scope": k.scope,
        "reason": k.reason,
        "show_reason": k.show_reason,
        "thrown_by": k.thrown_by,
        "on_behalf_of": k.on_behalf_of,
        "at": k.at,
    }


# -- models ----------------------------------------------------------------------------

Model = Annotated[str, typer.Argument(help="A model id or glob (claude-sonnet-4-6, claude-*).")]


@models_app.command("propose")
def models_propose(model: Model, reason: Reason, by: By = None) -> None:
    """Propose a model for approval (platform's action; security approves)."""
    with refusals():
        caller = _caller(by, PLATFORM_ADMIN)
        settings = Settings.load()
        with_database(
            settings,
            lambda db: service.propose_model(
                _store(db, settings), caller, model=model, reason=reason, source="cli"
            ),
        )
    out.print(f"Proposed {model}; security approves it with `gatehouse models approve`.")


@models_app.command("approve")
def models_approve(model: Model, reason: Reason, by: By = None, role: Role = SECURITY) -> None:
    """Approve a model (security's vendor-risk veto)."""
    approved = _change_models(service.approve_model, model, reason, by, role)
    out.print(f"Approved models: {', '.join(approved)}", highlight=False)
    err.print(APPLIED)


@models_app.command("revoke")
def models_revoke(model: Model, reason: Reason, by: By = None, role: Role = SECURITY) -> None:
    """Remove a model from the approved list, or reject a proposal (security)."""
    approved = _change_models(service.revoke_model, model, reason, by, role)
    out.print(f"Approved models: {', '.join(approved) or 'none in the policy'}", highlight=False)
    err.print(APPLIED)


def _change_models(
    change: Callable[..., Awaitable[tuple[str, ...]]],
    model: str,
    reason: str,
    by: str | None,
    role: str,
) -> tuple[str, ...]:
    """Approve or revoke ``model`` as ``by`` holding ``role``; the approved list after."""
    with refusals():
        caller = _caller(by, role)
        settings = Settings.load()
        return with_database(
            settings,
            lambda db: change(
                _store(db, settings), caller, model=model, reason=reason, source="cli"
            ),
        )


@models_app.command("list")
def models_list(as_json: AsJson = False) -> None:
    """Approved models and proposals awaiting security (and GATEHOUSE_APPROVED_MODELS)."""
    with refusals():
        settings = Settings.load()
        _, policy = with_database(settings, lambda db: _store(db, settings).current())
    setting = [g.strip() for g in settings.approved_models.split(",") if g.strip()]
    if as_json:
        data = {
            "approved": list(policy.models.approved),
            "setting": setting,
            "proposed": [
                {"model": p.model, "proposed_by": p.proposed_by, "reason": p.reason}
                for p in policy.models.proposed
            ],
        }
        sys.stdout.write(orjson.dumps(data).decode() + "\n")
        return
    out.print(f"Approved (policy): {', '.join(policy.models.approved) or 'any'}", highlight=False)
    out.print(
        f"Approved (GATEHOUSE_APPROVED_MODELS): {', '.join(setting) or 'any'}", highlight=False
    )
    for p in policy.models.proposed:
        out.print(
            f"Proposed: {p.model} by {p.proposed_by} on {_when(p.proposed_at)}: {escape(p.reason)}",
            highlight=False,
        )
