"""`gatehouse chargeback report|export` and `gatehouse prices`: what finance reads."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table
from rich.text import Text

from gatehouse.cli.common import err, fail, out, refusals, with_database
from gatehouse.ledger.exports import parse_format
from gatehouse.ledger.prices import load_price_table
from gatehouse.ledger.reporting import (
    chargeback_export,
    chargeback_report,
    describe_prices,
    parse_period,
)
from gatehouse.ledger.rollups import (
    MICROS_PER_USD,
    NO_VALUE,
    DeveloperStats,
    Report,
    ReportRow,
    parse_dimension,
)
from gatehouse.settings import Settings

app = typer.Typer(
    help="Spend by team, developer, repository, model and cost centre; finance exports.",
    no_args_is_help=True,
)

# Piped output keeps whole lines, as in cli/main.py.


MonthOption = Annotated[
    str | None, typer.Option("--month", help="UTC calendar month, YYYY-MM (default: this one).")
]


@app.command("report")
def report(
    month: MonthOption = None,
    day: Annotated[
        str | None, typer.Option("--day", help="One UTC day, YYYY-MM-DD, instead of a month.")
    ] = None,
    by: Annotated[
        str,
        typer.Option(
            "--by", help="team, developer, repository, model, cost-centre, session or client."
        ),
    ] = "team",
    team: Annotated[
        str | None, typer.Option("--team", help="Only this team's usage (figures included).")
    ] = None,
    daily: Annotated[bool, typer.Option("--daily", help="Add a table of per-day totals.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Spend for a month (or a day) grouped by one dimension, with the seed figures."""
    with refusals():
        period = parse_period(month, day, names=("--month", "--day"))
        dimension = parse_dimension(by, "--by")
        settings = Settings.load()
        result = with_database(
            settings, lambda db: chargeback_report(db, period, dimension, daily=daily, team=team)
        )
    if as_json:
        sys.stdout.write(orjson.dumps(result.to_json()).decode() + "\n")
        return
    _report_tables(result)


@app.command("export")
def export(
    month: MonthOption = None,
    fmt: Annotated[
        str, typer.Option("--format", help="csv (by developer/team/repository/model) or focus.")
    ] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """A month's usage as CSV or as a FOCUS 1.2 file for FinOps tools."""
    with refusals():
        period = parse_period(month, names=("--month", "--day"))
        chosen = parse_format(fmt, "--format")
        settings = Settings.load()
        result = with_database(settings, lambda db: chargeback_export(db, period, chosen))
    if output is None:
        sys.stdout.write(result.text)
    else:
        try:
            output.write_text(result.text, encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {output}: {exc.strerror or exc}")
            raise typer.Exit(2) from None
        total = _money(result.cost_micros)
        err.print(Text(f"Wrote {result.rows} rows to {output}: {total} for {period.label}."))
    if result.unpriced_records:
        err.print(
            "[yellow]warning:[/yellow] not in the cost columns: "
            f"{_records(result.unpriced_records)} ({result.unpriced_tokens:,} tokens) whose "
            "model has no price; add the models to GATEHOUSE_PRICE_FILE.",
            highlight=False,
        )


def prices(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Show the price table in effect: the packaged list prices merged with GATEHOUSE_PRICE_FILE."""
    with refusals():
        settings = Settings.load()
        source = Path(settings.price_file) if settings.price_file else None
        models = describe_prices(load_price_table(source))
    if as_json:
        document = {"operator_file": str(source) if source else None, "models": models}
        sys.stdout.write(orjson.dumps(document).decode() + "\n")
        return
    table = Table(
        "model",
        "aliases",
        "from",
        "input",
        "output",
        "cache write 5m",
        "cache write 1h",
        "cache read",
        "rules",
        title=Text("USD per million tokens" + (f" (with {source})" if source else "")),
    )
    for model in models:
        for price in model["prices"]:
            rules = [
                f"prompt > {t['above_prompt_tokens']:,}: {t['input']} / {t['output']}"
                for t in price["tiers"]
            ]
            rules += [f"geo {geo} ×{m}" for geo, m in price["inference_geo"].items()]
            table.add_row(
                Text(model["model"]),
                Text(", ".join(model["aliases"])),
                price["effective_from"] + ("" if price["in_effect"] else " (not in effect)"),
                price["input"],
                price["output"],
                price["cache_write_5m"],
                price["cache_write_1h"],
                price["cache_read"],
                "; ".join(rules),
            )
    out.print(table)


# -- rendering -------------------------------------------------------------------


def _report_tables(report: Report) -> None:
    total = report.total
    table = Table(report.by.value, title=f"Chargeback {report.period} by {report.by.value}")
    for heading in _NUMBER_HEADINGS:
        table.add_column(heading, justify="right")
    for row in report.rows:
        # Keys come from request headers: shown as text, never read as Rich markup.
        table.add_row(Text(row.key or NO_VALUE), *_cells(row, total.cost_micros))
    table.add_section()
    table.add_row("total", *_cells(total, total.cost_micros), style="bold")
    out.print(table)
    for line in _figures(report.stats, report.period):
        out.print(line, highlight=False)
    if total.unpriced:
        err.print(
            "[yellow]warning:[/yellow] not in any cost above: "
            f"{_records(total.unpriced)} whose model has no price; add the models to "
            "GATEHOUSE_PRICE_FILE.",
            highlight=False,
        )
    if report.days:
        days = Table("day", title="Per day (UTC)")
        for heading in ("cost (USD)", "records", "unpriced"):
            days.add_column(heading, justify="right")
        for d in report.days:
            days.add_row(
                d.day.isoformat(), _money(d.cost_micros), f"{d.records:,}", f"{d.unpriced:,}"
            )
        out.print(days)


_NUMBER_HEADINGS = (
    "cost (USD)",
    "share",
    "records",
    "unpriced",
    "developers",
    "input",
    "output",
    "cache write 5m",
    "cache write 1h",
    "cache read",
)


def _cells(row: ReportRow, total_micros: int) -> list[str]:
    share = f"{row.cost_micros / total_micros:.1%}" if total_micros else "-"
    counts = (
        row.records,
        row.unpriced,
        row.developers,
        row.input_tokens,
        row.output_tokens,
        row.cache_write_5m_tokens,
        row.cache_write_1h_tokens,
        row.cache_read_tokens,
    )
    return [_money(row.cost_micros), share, *(f"{n:,}" for n in counts)]


def _figures(stats: DeveloperStats, period: str) -> list[str]:
    if not stats.developers:
        return [f"No developer used Gatehouse in {period}."]
    share = stats.top_decile_share
    lines = [
        f"Active developers: {stats.developers}; cost per developer: "
        f"median {_money(stats.median_micros)}, P90 {_money(stats.p90_micros)}, "
        f"mean {_money(stats.per_developer_micros)}.",
        f"Top decile: {stats.top_decile_developers} developer"
        f"{'' if stats.top_decile_developers == 1 else 's'} spending at least "
        f"{_money(stats.top_decile_threshold_micros)} spent {_money(stats.top_decile_micros)}"
        + (f" ({share:.1%} of the total)." if share is not None else "."),
    ]
    change = stats.month_over_month
    if stats.previous_per_developer_micros is not None:
        lines.append(
            "Month over month, per active developer: "
            f"{_money(stats.previous_per_developer_micros)} ({stats.previous_developers} "
            f"developers) → {_money(stats.per_developer_micros)}"
            + (f" ({change:+.1%})." if change is not None else ".")
        )
    return lines


def _records(count: int) -> str:
    return "1 record" if count == 1 else f"{count:,} records"


def _money(micros: int) -> str:
    whole, fraction = divmod(abs(micros), MICROS_PER_USD)
    return f"{'-' if micros < 0 else ''}${whole:,}.{fraction:06d}"


# -- plumbing --------------------------------------------------------------------
