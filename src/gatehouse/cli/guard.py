"""`gatehouse guard scan|rules|coverage`: test the guardrails' rules, see what they cover.

``scan`` reads text or a Messages request JSON (a file, or ``-`` for stdin)
and prints one JSON line per finding; with ``--jsonl`` every input line is one
item (a Messages request object, or ``{"text": …, "origin": …}``) and each
finding carries the input's ``line``, so a corpus of thousands of items is
scanned in one process.  The rules are the built-in packs plus the file named
by ``GATEHOUSE_GUARD_RULES`` (or ``--rules``); the actions are the defaults,
or the policy's for ``--team``/``--repository`` when the database is reachable.
Findings never include the matched value, only a masked excerpt.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.table import Table

from gatehouse.cli.common import out, refusals, with_database
from gatehouse.content import blocks, make_block
from gatehouse.errors import InvalidRequest
from gatehouse.guardrails.rules import ORIGINS, describe
from gatehouse.guardrails.screen import Screener, load_screener
from gatehouse.policy.guardactions import DEFAULT_ACTIONS
from gatehouse.settings import Settings
from gatehouse.store.db import Database
from gatehouse.store.guard import guard_verdicts

app = typer.Typer(
    help="Guardrails: scan text or requests with the rules, list the rules, show coverage.",
    no_args_is_help=True,
)


def _screener(rules: str | None, settings: Settings) -> Screener:
    return load_screener(
        rules if rules is not None else settings.guard_rules,
        classifier=settings.guard_injection_classifier,
    )


@app.command()
def scan(
    files: Annotated[list[str], typer.Argument(help="Files to scan; - reads stdin.")],
    jsonl: Annotated[
        bool, typer.Option("--jsonl", help="Each input line is one item (request or text).")
    ] = False,
    origin: Annotated[
        str, typer.Option(help=f"Where plain text comes from: {', '.join(ORIGINS)}.")
    ] = "user",
    rules: Annotated[
        str | None, typer.Option(help="Operator rule file (default: GATEHOUSE_GUARD_RULES).")
    ] = None,
) -> None:
    """Print the findings in FILES as JSON lines (detector, rule, action, block, span, excerpt)."""
    settings = Settings.load()
    with refusals():
        if origin not in ORIGINS:
            raise InvalidRequest(f"--origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
        screener = _screener(rules, settings)
        write = sys.stdout.buffer.write
        for name in files:
            source = _read(name)
            if jsonl:
                for number, line in enumerate(source.splitlines(), 1):
                    if line.strip():
                        item = _item(line, f"{name}:{number}")
                        for found in _findings(screener, item, origin):
                            write(orjson.dumps({**found, "line": number}) + b"\n")
            else:
                item = _document(source)
                for found in _findings(screener, item, origin):
                    write(orjson.dumps({**found, "file": name} if len(files) > 1 else found))
                    write(b"\n")
        sys.stdout.flush()


def _read(name: str) -> bytes:
    if name == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise InvalidRequest(f"cannot read {name}: {exc.strerror}") from None


def _document(raw: bytes) -> Any:
    """A whole file: a Messages request when it is JSON with ``messages``, else text."""
    stripped = raw.lstrip()
    if stripped.startswith(b"{"):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("messages"), list):
            return parsed
    return raw.decode("utf-8", "replace")


def _item(line: bytes, where: str) -> Any:
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"{where}: not a JSON line ({exc})") from None
    if isinstance(item, dict) and isinstance(item.get("messages"), list):
        return item
    if isinstance(item, dict) and isinstance(item.get("text"), str):
        return item
    raise InvalidRequest(f'{where}: expected a Messages request or {{"text": …}}')


def _findings(screener: Screener, item: Any, origin: str) -> Iterator[dict[str, Any]]:
    actions: Mapping[str, str] = DEFAULT_ACTIONS
    if isinstance(item, dict) and "messages" in item:
        for finding in screener.screen(blocks(item), actions).findings:
            yield finding.to_dict()
        return
    if isinstance(item, dict):
        text = item["text"]
        origin = item.get("origin", origin) if item.get("origin") in ORIGINS else origin
    else:
        text = item
    if origin == "tool_result":
        block = make_block("text", "user", {"type": "tool_result", "content": text})
    else:
        block = make_block("text", origin if origin != "user" else "user", text)
    for finding in screener.screen([block], actions).findings:
        found = finding.to_dict()
        found["block"] = "text"
        yield found


@app.command("rules")
def list_rules(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    rules: Annotated[
        str | None, typer.Option(help="Operator rule file (default: GATEHOUSE_GUARD_RULES).")
    ] = None,
) -> None:
    """List every rule in force: built-in packs and the operator's file."""
    settings = Settings.load()
    with refusals():
        screener = _screener(rules, settings)
    described = describe(screener.scanner.ruleset.rules)
    for rule in described:
        rule["default_action"] = DEFAULT_ACTIONS.get(str(rule["detector"]), "flag")
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(described, option=orjson.OPT_INDENT_2) + b"\n")
        return
    table = Table("rule", "detector", "default action", "description", "source")
    for rule in described:
        table.add_row(
            str(rule["id"]),
            str(rule["detector"]),
            str(rule["default_action"]),
            str(rule["description"]),
            str(rule["source"]),
        )
    out.print(table)
    out.print(f"{len(described)} rules")


@app.command()
def coverage(
    since: Annotated[float, typer.Option(help="Hours to look back.")] = 24.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Guardrail coverage: screened / sent Messages requests, and the verdicts."""
    settings = Settings.load()

    async def work(db: Database) -> dict[str, int]:
        return await guard_verdicts(db, time.time() - since * 3600)

    with refusals():
        verdicts = with_database(settings, work)
    # Refused before screening: never sent, so neither screened nor a gap.
    total = sum(verdicts.values()) - verdicts.get("refused", 0)
    screened = total - verdicts.get("", 0) - verdicts.get("error", 0)
    named = {k or "unscreened": v for k, v in sorted(verdicts.items())}
    report: dict[str, Any] = {
        "since_hours": since,
        "requests": total,
        "screened": screened,
        "coverage": round(screened / total, 4) if total else None,
        "verdicts": named,
    }
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(report) + b"\n")
        return
    shown = f"{report['coverage']:.2%}" if total else "no requests"
    out.print(f"coverage {shown}: {screened} of {total} requests screened in the last {since:g} h")
    for verdict, count in named.items():
        out.print(f"  {verdict:<12} {count}")
