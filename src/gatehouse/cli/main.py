"""The `gatehouse` command: serve, sim, demo, keys, usage."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
import uvicorn
import uvloop
from rich.table import Table

from gatehouse.app import Services, create_app
from gatehouse.cli import audit, budget, chargeback, guard, repos, setup
from gatehouse.cli import login as sso
from gatehouse.cli import policy as policy_cli
from gatehouse.cli.common import database, err, fail, os_user, out, refusals, run
from gatehouse.cli.processes import simulator, uvicorn_config
from gatehouse.errors import GatewayError, InvalidRequest
from gatehouse.identity.directory import Directory
from gatehouse.identity.keys import (
    NewKey,
    announce_key_change,
    digest,
    load_secret,
    mint_key,
    parse_duration,
)
from gatehouse.identity.roles import ROLES, parse_roles
from gatehouse.ledger.usage import UsageRecord
from gatehouse.policy.document import Policy, RepoRule
from gatehouse.settings import Settings
from gatehouse.store import identity as identity_store
from gatehouse.store.policy import PolicyStore

app = typer.Typer(
    help="Gatehouse: the control plane in front of Claude Code.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="Create, list and revoke developer keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
app.add_typer(setup.app, name="setup")
app.add_typer(chargeback.app, name="chargeback")
app.add_typer(budget.app, name="budget")
app.add_typer(policy_cli.policy_app, name="policy")
app.add_typer(policy_cli.killswitch_app, name="killswitch")
app.add_typer(policy_cli.models_app, name="models")
app.add_typer(repos.app, name="repos")
app.add_typer(guard.app, name="guard")
app.add_typer(audit.app, name="audit")
app.command("prices")(chargeback.prices)
app.command("login")(sso.login)
app.command("logout")(sso.logout)
app.command("whoami")(sso.whoami)


ANTHROPIC_API = "https://api.anthropic.com"


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("GATEHOUSE_LOG_LEVEL", "info").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        app()
    except GatewayError as exc:
        fail(exc.message)
        sys.exit(2)


@contextlib.contextmanager
def _upstream(settings: Settings) -> Any:
    """Settings with an upstream: the configured one, Anthropic's, or a child simulator."""
    if settings.upstream_url:
        yield settings
    elif settings.upstream_api_key:
        yield dataclasses.replace(settings, upstream_url=ANTHROPIC_API)
    else:
        with simulator() as url:
            err.print(
                f"[yellow]No upstream configured:[/yellow] using the built-in simulator at {url}.\n"
                "Set GATEHOUSE_UPSTREAM_API_KEY (and GATEHOUSE_UPSTREAM_URL) for the real API."
            )
            yield dataclasses.replace(settings, upstream_url=url)


def _serve(
    settings: Settings, after_start: Callable[[str, Services], Awaitable[None]] | None = None
) -> None:
    app = create_app(settings)
    services: Services = app.state.services
    server = uvicorn.Server(uvicorn_config(app, settings.host, settings.port))

    async def run() -> None:
        tasks = [asyncio.ensure_future(server.serve())]
        if after_start is not None:

            async def then() -> None:
                while not server.started:
                    if tasks[0].done():
                        return
                    await asyncio.sleep(0.05)
                await after_start(f"http://{settings.host}:{settings.port}", services)

            tasks.append(asyncio.ensure_future(then()))
        await asyncio.gather(*tasks)

    uvloop.run(run())


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the gateway (with the simulator as upstream when none is configured)."""
    settings = Settings.load(host=host, port=port)
    with _upstream(settings) as ready:
        err.print(f"Gatehouse listening on http://{ready.host}:{ready.port} → {ready.upstream_url}")
        _serve(ready)


@app.command()
def sim(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
    scenario: Annotated[
        Path | None, typer.Option(help="Scenario file (YAML or JSON) of scripted replies.")
    ] = None,
) -> None:
    """Run the Anthropic Messages API simulator."""
    from gatehouse.sim.app import create_sim_app

    server = uvicorn.Server(uvicorn_config(create_sim_app(scenario), host, port))
    server.run()


@app.command()
def demo(
    replay: Annotated[
        bool, typer.Option(help="Also drive a few Claude Code–shaped sessions and show usage.")
    ] = False,
) -> None:
    """Start Gatehouse on SQLite with a demo key; print how to point Claude Code at it."""
    from gatehouse.sim.traffic import replay_sessions

    # The demo serves Claude Code from whatever directory it is started in, so the
    # repository allow-list observes unless GATEHOUSE_POLICY_MODE says otherwise.
    explicit = "GATEHOUSE_POLICY_MODE" in os.environ
    settings = Settings.load() if explicit else Settings.load(policy_mode="observe")
    key = run(_demo_key(settings))
    run(_demo_policy(settings))
    # Listening on every address: print the one this machine can reach itself on.
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::") else settings.host
    base = f"http://{host}:{settings.port}"
    out.print("\nPoint Claude Code at Gatehouse (paste into your shell):\n")
    out.print(f"  export ANTHROPIC_BASE_URL={base}", highlight=False)
    out.print(f"  export ANTHROPIC_AUTH_TOKEN={key}", highlight=False)
    out.print("  export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n", highlight=False)
    _policy_banner(settings)

    async def after_start(url: str, services: Services) -> None:
        if replay:
            await replay_sessions(url, key)
            if services.drainer is not None:
                await services.drainer.flush()  # the replay's records, into the database
            _usage_table(await services.database.query_usage(limit=50))
        out.print(f"Gatehouse is serving on {url}. Ctrl-C to stop.")

    with _upstream(settings) as ready:
        _serve(ready, after_start)


async def _demo_policy(settings: Settings) -> None:
    """Approve the replay's repositories once (a policy version by ``gatehouse demo``)."""
    from gatehouse.sim.traffic import DEMO_REPOSITORIES

    def approve(policy: Policy) -> Policy:
        missing = {
            r: RepoRule("internal", approved_by="gatehouse demo", reason="demo replay")
            for r in DEMO_REPOSITORIES
            if policy.rule_for(r) is None
        }
        return policy.replace(repositories={**policy.repositories, **missing})

    async with database(settings) as db:
        await PolicyStore(db).change(
            approve, author="gatehouse demo", reason="approve the demo's repositories", source="cli"
        )


def _policy_banner(settings: Settings) -> None:
    if settings.policy_mode == "observe":
        out.print(
            "[bold]Policy: observe mode (demo).[/bold] Repositories nobody approved are served "
            "and recorded as policy_would_deny events; the demo's own repositories are "
            "approved. To see default deny, restart with GATEHOUSE_POLICY_MODE=enforce and "
            "approve your repository first:"
        )
    else:
        out.print(
            "[bold]Policy: enforce.[/bold] Only approved repositories are served. "
            "Approve yours before starting Claude Code:"
        )
    out.print(
        "  gatehouse repos approve github.com/you/your-repo --classification internal "
        '--reason "demo"\n  (or list it under repositories: in a file for '
        "`gatehouse policy apply`)\n",
        highlight=False,
    )


async def _demo_key(settings: Settings) -> str:
    """Reuse the demo key kept in the data directory while it is still valid."""
    path = settings.data_dir / "demo_key"
    secret = load_secret(settings.secret_key, settings.data_dir)
    async with database(settings) as db:
        if path.exists():
            existing = path.read_text().strip()
            wanted = digest(secret, existing)
            for key in await db.list_keys():
                if key.digest == wanted and key.revoked_at is None:
                    return existing
        new = mint_key(secret, email="demo@example.com", team="demo")
        await db.insert_key(new.record, actor=os_user(), reason="gatehouse demo")
    path.write_text(new.secret + "\n")
    path.chmod(0o600)
    return new.secret


@keys_app.command("create")
def keys_create(
    user: Annotated[str | None, typer.Option(help="The human the key belongs to (email).")] = None,
    owner: Annotated[
        str | None,
        typer.Option(help="The human who owns a --service key (email); usage is theirs."),
    ] = None,
    service: Annotated[
        str, typer.Option(help="Mark a service key for this automation (needs --owner).")
    ] = "",
    team: Annotated[
        str,
        typer.Option(help="Team for attribution and budgets; default: from the IdP's groups."),
    ] = "",
    expires: Annotated[str | None, typer.Option(help="Lifetime such as 30d or 12h.")] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(help=f"A role (repeatable): {', '.join(ROLES)}. Default developer."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print {id, key} as JSON.")] = False,
) -> None:
    """Create a key; it is printed once and only its digest is stored."""
    settings = Settings.load()
    if user and owner and user.strip().lower() != owner.strip().lower():
        raise typer.BadParameter(
            "--user and --owner name the same human; give one", param_hint="--owner"
        )
    email = (owner or user or "").strip()
    if service and not email:
        raise typer.BadParameter(
            "a service key needs a human owner: --owner EMAIL", param_hint="--owner"
        )
    if not email:
        raise typer.BadParameter(
            "name the human the key belongs to: --user EMAIL", param_hint="--user"
        )
    expires_in = parse_duration(expires) if expires else None
    try:
        roles = parse_roles(role or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--role") from None
    secret = load_secret(settings.secret_key, settings.data_dir)

    async def store() -> NewKey:
        async with database(settings) as db:
            found = await identity_store.lookup(db, email, Directory.from_settings(settings))
            if found is not None and not found[2]:
                raise InvalidRequest(
                    f"{email} was deprovisioned by the IdP (SCIM); reactivate them there first"
                )
            new = mint_key(
                secret,
                email=email,
                team=team or (found[0] if found is not None else ""),
                roles=roles,
                expires_in=expires_in,
                service=service,
            )
            await db.insert_key(new.record, actor=os_user(), reason="gatehouse keys create")
        await announce_key_change(settings.redis_url, new.record.id)
        return new

    with refusals():
        new = run(store())
    record = new.record
    if as_json:
        sys.stdout.write(orjson.dumps({"id": record.id, "key": new.secret}).decode() + "\n")
        return
    what = f"Service key {record.id} ({service}) owned by" if service else f"Key {record.id} for"
    out.print(f"{what} {email}" + (f" (team {record.team})" if record.team else ""))
    out.print(new.secret, highlight=False)
    err.print("[dim]Shown once; Gatehouse keeps only its digest.[/dim]")


@keys_app.command("list")
def keys_list(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines.")] = False,
) -> None:
    """List keys (never their secrets)."""
    settings = Settings.load()

    async def load() -> list[Any]:
        async with database(settings) as db:
            return await db.list_keys()

    keys = run(load())
    now = time.time()
    if as_json:
        for k in keys:
            row = {
                "id": k.id,
                "user": k.email,
                "team": k.team,
                "roles": list(k.roles),
                "service": k.service,
                "created_at": _iso(k.created_at),
                "expires_at": _iso(k.expires_at),
                "revoked_at": _iso(k.revoked_at),
                "status": _key_status(k, now),
            }
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return
    table = Table("id", "user", "team", "roles", "service", "created", "expires", "status")
    for k in keys:
        table.add_row(
            k.id,
            k.email,
            k.team,
            ",".join(k.roles),
            k.service or "-",
            _iso(k.created_at),
            _iso(k.expires_at) or "-",
            _key_status(k, now),
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from keys list).")],
) -> None:
    """Revoke a key; running gateways refuse it within a second (at once with Redis)."""
    settings = Settings.load()
    key_id = key_id.removeprefix("ghk_").split("_", 1)[0]

    async def revoke() -> bool:
        async with database(settings) as db:
            revoked = await db.revoke_key(
                key_id, time.time(), actor=os_user(), reason="gatehouse keys revoke"
            )
        if revoked:
            await announce_key_change(settings.redis_url, key_id)
        return revoked

    if not run(revoke()):
        fail(f"no active key with id {key_id!r}")
        raise typer.Exit(1)
    out.print(f"Revoked key {key_id}.")


@app.command()
def usage(
    since: Annotated[str, typer.Option(help="How far back, such as 1h or 7d.")] = "24h",
    limit: Annotated[int, typer.Option(help="At most this many records.")] = 1000,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one record each.")] = False,
) -> None:
    """List usage records, newest first."""
    settings = Settings.load()
    cutoff = time.time() - parse_duration(since)

    async def load() -> list[UsageRecord]:
        async with database(settings) as db:
            return await db.query_usage(since=cutoff, limit=limit)

    records = run(load())
    if as_json:
        for r in records:
            row = r.to_dict()
            row["model"] = r.model_served or r.model_requested
            row["time"] = _iso(r.ts)
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return
    _usage_table(records)


@app.command("key-helper")
def key_helper() -> None:
    """Print a short-lived access token for Claude Code's apiKeyHelper (after `gatehouse login`)."""
    from gatehouse.cli import keyhelper

    raise typer.Exit(keyhelper.main([]))


@app.command()
def config() -> None:
    """Show the settings in effect (secrets masked)."""
    for name, value in Settings.load().describe().items():
        out.print(f"{name} = {value}", highlight=False)


def _usage_table(records: list[UsageRecord]) -> None:
    table = Table(
        "time",
        "developer",
        "repository",
        "session",
        "model",
        "in",
        "out",
        "cache w",
        "cache r",
        "cost $",
        "status",
        "ttfb ms",
    )
    for r in records:
        table.add_row(
            _iso(r.ts)[11:19],
            r.developer,
            r.repository,
            r.session_id[:8],
            r.model_served or r.model_requested,
            str(r.input_tokens),
            str(r.output_tokens),
            str(r.cache_creation_input_tokens),
            str(r.cache_read_input_tokens),
            "unknown" if r.cost_micros is None else f"{r.cost_micros / 1_000_000:.6f}",
            str(r.status) + (f" {r.error_type}" if r.error_type else ""),
            f"{r.ttfb_ms:.1f}" if r.ttfb_ms is not None else "-",
        )
    out.print(table)


def _key_status(key: Any, now: float) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


def _iso(ts: float | None) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")
