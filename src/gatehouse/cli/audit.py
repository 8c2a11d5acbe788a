"""`gatehouse audit …`: search the audit trail, read transcripts, investigate, verify, retain.

The read commands (search, transcript, investigate) call `gatehouse.audit`'s
search, transcript and investigate modules; verify, hold, release, gc and
retention are thin wrappers over the audit store's chain and retention
modules.  Like the other commands that open the database directly, the
operator states who acts (``--by``, default the OS user) and roles are not
checked: the admin API is the place for people who should not have database
access.  Every read of content is itself recorded as an event.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import orjson
import typer
from rich.table import Table
from rich.text import Text

from gatehouse.audit import chain, retention
from gatehouse.audit.crypto import Keyring
from gatehouse.audit.investigate import (
    Investigation,
    investigate,
    read_transcript,
    searched,
)
from gatehouse.audit.search import MARK_END, MARK_START, Filters, SearchResult, parse_when
from gatehouse.audit.transcript import FORMATS, Transcript, money, render
from gatehouse.cli.common import err, fail, os_user, out, refusals, with_database
from gatehouse.errors import InvalidRequest
from gatehouse.settings import Settings
from gatehouse.store.db import Database

app = typer.Typer(
    help="The audit trail: search, transcripts, investigations, integrity and retention.",
    no_args_is_help=True,
)

Format = Annotated[str, typer.Option("--format", help="md, json or html.")]
Output = Annotated[
    Path | None, typer.Option("--output", help="Write to this file instead of stdout.")
]
By = Annotated[
    str | None, typer.Option("--by", help="Who is reading or acting (default: your OS user).")
]
AsJson = Annotated[bool, typer.Option("--json", help="One JSON document.")]


def keyring(settings: Settings) -> Keyring | None:
    """The audit keyring when GATEHOUSE_AUDIT_KEY_FILE is set (blocks are then encrypted)."""
    return Keyring.load(Path(settings.audit_key_file)) if settings.audit_key_file else None


@app.command("search")
def search_command(
    query: Annotated[str, typer.Argument(help='Words, "a phrase", prefix*, -excluded, OR.')],
    developer: Annotated[str, typer.Option("--developer", help="Only this developer.")] = "",
    team: Annotated[str, typer.Option("--team", help="Only this team.")] = "",
    repository: Annotated[str, typer.Option("--repository", help="Only this repository.")] = "",
    session: Annotated[str, typer.Option("--session", help="Only this session.")] = "",
    model: Annotated[str, typer.Option("--model", help="Only requests to this model.")] = "",
    guard: Annotated[
        str, typer.Option("--guard", help="Guardrail verdict: flagged, redacted, blocked, …")
    ] = "",
    decision: Annotated[
        str, typer.Option("--decision", help="Policy decision: allowed, denied, observed.")
    ] = "",
    since: Annotated[
        str | None, typer.Option("--since", help="24h, 7d, or a date/time (UTC).")
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="A date/time (UTC).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many hits.")] = 50,
    by: By = None,
    as_json: AsJson = False,
) -> None:
    """Full-text search over every prompt, answer and tool call, newest first."""
    with refusals():
        filters = Filters(
            developer=developer,
            team=team,
            repository=repository,
            session=session,
            model=model,
            guard=guard,
            decision=decision,
            since=parse_when(since) if since else None,
            until=parse_when(until, name="--until") if until else None,
        )

        async def go(db: Database) -> SearchResult:
            actor = by or os_user()
            return await searched(db, query, filters, limit=limit, actor=actor, via="cli")

        result = with_database(Settings.load(), go)
    if as_json:
        sys.stdout.write(orjson.dumps(result.to_json()).decode() + "\n")
        return
    if not result.hits:
        err.print(f"No match for {query!r} ({result.elapsed_ms:,.0f} ms).", highlight=False)
        return
    table = Table("time", "developer", "repository", "session", "kind", "verdicts", "match")
    for hit in result.hits:
        table.add_row(
            _time(hit.ts),
            Text(hit.developer),
            Text(hit.repository),
            Text(hit.session[:13]),
            hit.kind,
            Text(" ".join(v for v in (hit.guard, hit.decision) if v)),
            _marked(hit.snippet),
        )
    out.print(table)
    more = " (more: narrow the search or raise --limit)" if result.more else ""
    err.print(f"{len(result.hits)} hits in {result.elapsed_ms:,.0f} ms{more}.", highlight=False)


@app.command("transcript")
def transcript_command(
    session: Annotated[str, typer.Argument(help="The session id (from search or usage).")],
    fmt: Format = "md",
    output: Output = None,
    by: By = None,
) -> None:
    """A session's conversation as the developer lived it, with verdicts, cost and timing."""
    with refusals():
        settings, ring = _reading(fmt)

        async def go(db: Database) -> Transcript:
            actor = by or os_user()
            return await read_transcript(db, session, ring, fmt=fmt, actor=actor, via="cli")

        text = render(with_database(settings, go), fmt)
    _write(text, output)


@app.command("investigate")
def investigate_command(
    event_id: Annotated[
        str, typer.Argument(help="An event id (guardrail, policy…) or a request id (gh_…).")
    ],
    fmt: Format = "md",
    output: Output = None,
    by: By = None,
) -> None:
    """From one event to the transcript, the developer, the repository and their other sessions."""
    with refusals():
        settings, ring = _reading(fmt)
        found = with_database(
            settings,
            lambda db: investigate(db, event_id, actor=by or os_user(), via="cli", keyring=ring),
        )
    if fmt == "json":
        _write(orjson.dumps(found.to_json(), option=orjson.OPT_INDENT_2).decode() + "\n", output)
        return
    text = render(found.transcript, fmt, highlight=found.record_id) if found.transcript else ""
    if fmt == "md":
        text = _summary(found) + "\n" + text
    _write(text, output)
    err.print(f"Investigated in {found.elapsed_ms:,.0f} ms (recorded).", highlight=False)


@app.command("verify")
def verify_command(
    since: Annotated[
        str | None, typer.Option("--since", help="Only what changed since: 24h, 7d or a date.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Check the hash chains, the daily roots and the blocks; exit 1 naming what was altered."""
    with refusals():
        cutoff = parse_when(since) if since else None
        settings = Settings.load()
        ring = keyring(settings)
        problems = with_database(settings, lambda db: chain.verify(db, cutoff, keyring=ring))
    if as_json:
        document = {"intact": not problems, "problems": [dataclasses.asdict(p) for p in problems]}
        sys.stdout.write(orjson.dumps(document).decode() + "\n")
    elif problems:
        table = Table("problem", "chain", "seq", "record", "block", "detail")
        for p in problems:
            table.add_row(
                p.kind,
                Text(p.chain),
                "" if p.seq is None else str(p.seq),
                Text(p.record_id),
                p.digest[:12],
                Text(p.detail),
            )
        out.print(table)
    if problems:
        fail(f"the audit trail does not verify: {len(problems)} problem(s) listed above")
        raise typer.Exit(1)
    if not as_json:
        scope = f" since {_time(cutoff)} UTC" if cutoff is not None else ""
        out.print(f"The audit trail is intact{scope}: chains, daily roots and blocks verify.")


@app.command("hold")
def hold_command(
    reason: Annotated[str, typer.Option("--reason", help="Why (the matter, the ticket).")],
    developer: Annotated[str, typer.Option("--developer", help="Keep this developer's.")] = "",
    session: Annotated[str, typer.Option("--session", help="Keep this session.")] = "",
    repository: Annotated[str, typer.Option("--repository", help="Keep this repo's.")] = "",
    by: By = None,
) -> None:
    """Place a legal hold: kept whatever its age until released."""
    scopes = [(s, v) for s, v in (("developer", developer), ("session", session),
                                  ("repository", repository)) if v]  # fmt: skip
    with refusals():
        if len(scopes) != 1:
            raise InvalidRequest("name one of --developer, --session or --repository to hold")
        if not reason.strip():
            raise InvalidRequest("--reason: say why (a legal matter, an incident)")
        scope, value = scopes[0]
        hold = with_database(
            Settings.load(),
            lambda db: retention.place_hold(db, scope, value, reason=reason, actor=by or os_user()),
        )
    out.print(Text(f"Hold {hold.id} placed on {scope} {value}."))


@app.command("release")
def release_command(
    hold_id: Annotated[str, typer.Argument(help="The hold's id (from `gatehouse audit holds`).")],
    reason: Annotated[str, typer.Option("--reason", help="Why it may go.")] = "",
    by: By = None,
) -> None:
    """Release a legal hold; retention applies again."""
    with refusals():
        released = with_database(
            Settings.load(),
            lambda db: retention.release_hold(db, hold_id, actor=by or os_user(), reason=reason),
        )
    if not released:
        fail(f"no active hold {hold_id!r}: see `gatehouse audit holds`")
        raise typer.Exit(1)
    out.print(Text(f"Hold {hold_id} released."))


@app.command("holds")
def holds_command(as_json: AsJson = False) -> None:
    """List the legal holds in force."""
    with refusals():
        holds = with_database(Settings.load(), retention.active_holds)
    if as_json:
        rows = [dataclasses.asdict(h) for h in holds]
        sys.stdout.write(orjson.dumps(rows).decode() + "\n")
        return
    table = Table("id", "scope", "value", "reason", "by", "since")
    for h in holds:
        table.add_row(h.id, h.scope, Text(h.value), Text(h.reason), Text(h.created_by),
                      _time(h.created_ts))  # fmt: skip
    out.print(table)


@app.command("retention")
def retention_command(
    team: Annotated[str, typer.Option("--team", help="Set this team's retention.")] = "",
    repository: Annotated[str, typer.Option("--repository", help="Set this repo's.")] = "",
    days: Annotated[int | None, typer.Option("--days", help="Days to keep; 0 forever.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the override.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why.")] = "",
    by: By = None,
) -> None:
    """Show retention (default and overrides), or set or clear a team's or repository's."""
    settings = Settings.load()
    with refusals():
        if team and repository:
            raise InvalidRequest("give --team or --repository, not both")
        if team or repository:
            if (days is None) == (not clear):
                raise InvalidRequest("give --days N (0 keeps forever) or --clear")
            if days is not None and days < 0:
                raise InvalidRequest("--days cannot be negative (0 keeps forever)")
            scope, value = ("team", team) if team else ("repository", repository)
            with_database(
                settings,
                lambda db: retention.set_retention(
                    db, scope, value, None if clear else days, actor=by or os_user(), reason=reason
                ),
            )
            kept = "the default" if clear else (f"{days} days" if days else "forever")
            out.print(Text(f"Retention of {scope} {value}: {kept}."))
            return
        overrides = with_database(settings, retention.retention_overrides)
    default = settings.audit_retention_days
    out.print(f"Default: {f'{default} days' if default else 'kept forever'} "
              "(GATEHOUSE_AUDIT_RETENTION_DAYS).")  # fmt: skip
    table = Table("scope", "value", "days")
    for (scope, value), n in sorted(overrides.items()):
        table.add_row(scope, Text(value), str(n))
    out.print(table)


@app.command("gc")
def gc_command(as_json: AsJson = False) -> None:
    """Delete the sessions past their retention and not held, with the blocks only they used."""
    settings = Settings.load()
    default = settings.audit_retention_days  # 0 keeps forever (retention.gc)
    with refusals():
        report = with_database(
            settings, lambda db: retention.gc(db, time.time(), default_days=default)
        )
    if as_json:
        sys.stdout.write(orjson.dumps(dataclasses.asdict(report)).decode() + "\n")
        return
    out.print(
        f"Deleted {report.chains:,} sessions ({report.records:,} records, "
        f"{report.blocks:,} blocks); {report.held:,} expired sessions kept by a legal hold."
    )


# -- rendering -------------------------------------------------------------------


def _summary(found: Investigation) -> str:
    lines = [f"# Investigation of {found.subject}", ""]
    if found.event is not None:
        e = found.event
        lines.append(f"- event: {e.kind} ({e.severity}) at {_time(e.ts)}: {e.subject}")
    lines += [
        f"- request: {found.record_id or 'not audited'}",
        f"- session: {found.session}",
        f"- developer: {found.developer or '?'}",
        f"- repository: {found.repository or 'none'}",
    ]
    if found.session_events:
        lines += ["", "## Events of this session", ""]
        lines += [f"- {_time(e.ts)} {e.kind}: {e.subject}" for e in found.session_events]
    for title, rows in (
        (f"Sessions of {found.developer} (30 days)", found.developer_sessions),
        (f"Sessions in {found.repository} (30 days)", found.repository_sessions),
    ):
        if rows:
            lines += ["", f"## {title}", ""]
            lines += [
                f"- {r['session']} · {r['developer']} · {r['repository'] or 'none'} · "
                f"{r['requests']} requests · {money(r['cost_micros'])} · "
                f"{r['guarded']} guarded · {r['denied']} denied · last {_time(r['last_ts'])}"
                for r in rows
            ]
    if found.transcript is None:
        lines += ["", "The session's transcript is not in the audit store."]
    return "\n".join(lines) + "\n"


def _marked(snippet: str) -> Text:
    text = Text()
    for i, piece in enumerate(snippet.replace(MARK_END, MARK_START).split(MARK_START)):
        text.append(piece, style="bold yellow" if i % 2 else "")
    return text


def _time(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _reading(fmt: str) -> tuple[Settings, Keyring | None]:
    """What a transcript or an investigation needs: a known format, settings, the keyring."""
    if fmt not in FORMATS:
        raise InvalidRequest(f"--format {fmt!r}: choose md, json or html")
    settings = Settings.load()
    return settings, keyring(settings)


def _write(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror or exc}")
        raise typer.Exit(2) from None
    err.print(Text(f"Wrote {output}."))
