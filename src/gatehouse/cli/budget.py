"""`gatehouse budget set|list|exception|remove`: budgets, as engineering managers own them.

Every change is written to the database (bumping the ``budgets`` revision, so
running gateways reload within ``GATEHOUSE_BUDGET_REFRESH_INTERVAL``), announced
on Redis when ``GATEHOUSE_REDIS_URL`` is set (so they reload at once), and
recorded as an event with who made it.  Bad input is one line on stderr and
exit status 2, never a traceback.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Annotated

import orjson
import typer
from rich.table import Table

from gatehouse.cli.common import err, fail, os_user, out, refusals, with_database
from gatehouse.errors import InvalidRequest
from gatehouse.ledger import budgeting
from gatehouse.ledger.alerts import mask_url
from gatehouse.ledger.budgets import (
    SCOPES,
    Budget,
    parse_ratio,
    parse_until,
    parse_usd,
    usd,
    utc_text,
)
from gatehouse.settings import Settings

app = typer.Typer(
    help="Budgets per developer, team or repository: soft alerts, hard pauses, exceptions.",
    no_args_is_help=True,
)


Developer = Annotated[
    str | None, typer.Option("--developer", help="A developer's budget (their email).")
]
Team = Annotated[str | None, typer.Option("--team", help="A team's budget.")]
Repository = Annotated[
    str | None,
    typer.Option("--repository", help="A repository's budget (github.com/acme/pay)."),
]
By = Annotated[
    str | None, typer.Option("--by", help="Who makes the change (default: your OS user).")
]


@app.command("set")
def set_budget(
    monthly: Annotated[str, typer.Option("--monthly", help="Monthly limit in USD.")],
    developer: Developer = None,
    team: Team = None,
    repository: Repository = None,
    daily: Annotated[
        str | None, typer.Option("--daily", help="Daily limit in USD too; 0 removes it.")
    ] = None,
    soft: Annotated[
        str | None, typer.Option("--soft", help="Alert at this share of the limit (0.8).")
    ] = None,
    hard: Annotated[
        str | None, typer.Option("--hard", help="Pause at this share of the limit (1.1).")
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option("--webhook", help="This budget's alert webhook; empty uses the global one."),
    ] = None,
    by: By = None,
) -> None:
    """Create or change a budget; options left out keep their current values."""
    with refusals():
        scope, name = _owner(developer, team, repository)
        monthly_micros = parse_usd(monthly, what="--monthly")
        daily_micros = None if daily is None else parse_usd(daily, what="--daily")
        soft_permille = None if soft is None else parse_ratio(soft, what="--soft")
        hard_permille = None if hard is None else parse_ratio(hard, what="--hard")
        settings = Settings.load()
        budget = with_database(
            settings,
            lambda db: budgeting.set_budget(
                db,
                settings.redis_url,
                scope=scope,
                name=name,
                monthly_micros=monthly_micros,
                daily_micros=daily_micros,
                soft_permille=soft_permille,
                hard_permille=hard_permille,
                webhook_url=webhook,
                by=by or os_user(),
            ),
        )
    out.print(f"Budget for {budget.describe()}: {_terms(budget)}.", highlight=False)
    err.print(
        "[dim]Running gateways apply it within GATEHOUSE_BUDGET_REFRESH_INTERVAL "
        "(at once with GATEHOUSE_REDIS_URL).[/dim]"
    )


@app.command("list")
def list_budgets(
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, one budget each.")] = False,
) -> None:
    """Every budget with this period's spend, the share used and its state."""
    with refusals():
        settings = Settings.load()
        rows = with_database(settings, budgeting.budget_statuses)
    if as_json:
        for row in rows:
            sys.stdout.write(orjson.dumps(row).decode() + "\n")
        return
    table = Table("budget", "limits", "exceptions", "spent", "used", "state", "alert/pause")
    for row in rows:
        monthly = row["monthly"]
        spent = f"{usd(monthly['spend_micros'])} in {monthly['period']}"
        used = monthly["used"]
        limit_text = f"{usd(monthly['limit_micros'])}/month"
        if row["daily"] is not None:
            daily = row["daily"]
            spent += f"\n{usd(daily['spend_micros'])} today"
            used += f"\n{daily['used']} today"
            limit_text += f"\n{usd(daily['limit_micros'])}/day"
        raised = "\n".join(
            f"+{usd(e['amount_micros'])} until {e['until'][:16].replace('T', ' ')} "
            f"({e['granted_by']})"
            for e in row["exceptions"]
        )
        table.add_row(
            f"{row['scope']} {row['name']}",
            limit_text,
            raised or "-",
            spent,
            used,
            row["state"],
            f"{row['soft']} / {row['hard']}",
        )
    out.print(table)


@app.command("exception")
def grant_exception(
    amount: Annotated[str, typer.Option("--amount", help="How much to add to the limit (USD).")],
    until: Annotated[
        str, typer.Option("--until", help="Last day (YYYY-MM-DD, UTC) or an ISO 8601 time.")
    ],
    reason: Annotated[str, typer.Option("--reason", help="Why: kept with who granted it.")],
    developer: Developer = None,
    team: Team = None,
    repository: Repository = None,
    by: By = None,
) -> None:
    """Raise a budget for a while: recorded with who granted it and why."""
    with refusals():
        scope, name = _owner(developer, team, repository)
        now = time.time()
        amount_micros = parse_usd(amount, what="--amount")
        ends = parse_until(until, now)
        settings = Settings.load()
        budget, granted, effective = with_database(
            settings,
            lambda db: budgeting.grant_exception(
                db,
                settings.redis_url,
                scope=scope,
                name=name,
                amount_micros=amount_micros,
                until=ends,
                reason=reason,
                by=by or os_user(),
                now=now,
            ),
        )
    out.print(
        f"Exception for {budget.describe()}: +{usd(granted.amount_micros)} until "
        f"{utc_text(granted.until)}, granted by {granted.granted_by} ({granted.reason}).",
        highlight=False,
    )
    now_limits = ", ".join(f"{usd(lim.micros)} {lim.kind}" for lim in effective)
    out.print(f"Limits now: {now_limits}.", highlight=False)


@app.command("remove")
def remove_budget(
    developer: Developer = None,
    team: Team = None,
    repository: Repository = None,
    by: By = None,
) -> None:
    """Remove a budget and its exceptions (what was spent stays in the ledger)."""
    with refusals():
        scope, name = _owner(developer, team, repository)
        settings = Settings.load()
        removed = with_database(
            settings,
            lambda db: budgeting.remove_budget(
                db, settings.redis_url, scope=scope, name=name, by=by or os_user()
            ),
        )
    if removed is None:
        fail(f"no budget for {scope} {name}")
        raise typer.Exit(1)
    out.print(f"Removed the budget for {removed.describe()}.", highlight=False)


# -- helpers ------------------------------------------------------------------------


def _owner(developer: str | None, team: str | None, repository: str | None) -> tuple[str, str]:
    named = [
        (scope, value.strip())
        for scope, value in zip(SCOPES, (developer, team, repository), strict=True)
        if value is not None
    ]
    if len(named) != 1:
        raise InvalidRequest(
            "name exactly one of --developer EMAIL, --team NAME, --repository NAME"
        )
    return budgeting.owner(*named[0])


def _terms(budget: Budget) -> str:
    daily = f", {usd(budget.daily_micros)} daily" if budget.daily_micros else ""
    hook = f"; alerts to {mask_url(budget.webhook_url)}" if budget.webhook_url else ""
    return (
        f"{usd(budget.monthly_micros)} monthly{daily}; alert at {budget.soft_permille / 10:g}%, "
        f"pause at {budget.hard_permille / 10:g}%{hook}"
    )


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")
