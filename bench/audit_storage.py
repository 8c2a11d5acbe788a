"""Audit storage for a 100-turn Claude Code session, against its unique content.

Generates one realistic session: a ~10 KB system prompt in three blocks, ~20 KB
of tool definitions, and 100 turns in which the model thinks, says a little and
calls a tool (streamed as SSE and reassembled by `ResponseAssembler`), the tool
result comes back (1–6 KB of code or output), now and then the developer types,
and Claude Code resends the whole history every turn with its cache breakpoint
moved to the newest block.  Every turn goes through `AuditCapture.entry` and
`write_audit` into a fresh SQLite database, exactly as the gateway records it.

Printed, in bytes:

* unique content — the canonical bytes of every distinct block (request and
  response), each once: the floor any store of the transcript needs;
* naive — every full request body as sent plus every response's blocks: what
  storing each request whole would take;
* stored — what the audit tables hold for it, counted column by column:
  block contents, record envelopes (every column's bytes; 8 per number), and
  the block→session links; then the search index's copy of the text; then the
  SQLite file's growth (after VACUUM) over an empty migrated database, which
  adds b-tree pages, indexes and the FTS5 inverted index;
* the spool — the bytes of the spool entries (what crosses the durable spool).

Both ratios against the 1.5x target: the transcript store (contents, envelopes,
links) and the whole SQLite file.  ``--index contentless`` (or
``contentless-column``) measures the search index variants that were weighed.

Run: ``.venv/bin/python bench/audit_storage.py [--turns 100] [--thinking keep] [--index content]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from gatehouse.audit.capture import AuditCapture, ResponseAssembler
from gatehouse.audit.store import write_audit
from gatehouse.content import blocks
from gatehouse.store.db import Database

TARGET = 1.5
WORDS = (
    "the function returns value when input valid raises otherwise callers check result before use "
    "next step pipeline retry timeout config handler request response cache token session module "
    "test fixture assert error branch commit merge review deploy rollback metric latency budget"
).split()
IDENTS = ("parse_config", "RetryPolicy", "handle_request", "UserRecord", "load_fixture", "emit")


def prose(rng: random.Random, size: int) -> str:
    out: list[str] = []
    n = 0
    while n < size:
        word = (
            rng.choice(WORDS)
            if rng.random() > 0.1
            else f"{rng.choice(IDENTS)}_{rng.randrange(999)}"
        )
        out.append(word)
        n += len(word) + 1
    return " ".join(out)


def code(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    n = 0
    while n < size:
        name = f"{rng.choice(IDENTS)}_{rng.randrange(10_000)}"
        line = rng.choice(
            (
                f"def {name}(self, value: int) -> int:",
                f"    return self.{name}(value + {rng.randrange(100)})",
                f"    if value > {rng.randrange(1000)}: raise ValueError('{name}')",
                f"# {prose(rng, 60)}",
                f"{name} = load_fixture('{name}.json')",
            )
        )
        lines.append(f"{len(lines) + 1:>5}\t{line}")
        n += len(lines[-1]) + 1
    return "\n".join(lines)


def sse(content: list[dict[str, Any]]) -> bytes:
    """The response as the upstream streams it: deltas of ~20 bytes."""
    events: list[dict[str, Any]] = [{"type": "message_start", "message": {"content": []}}]
    for i, block in enumerate(content):
        kind = block["type"]
        start = {"type": kind, "thinking": "", "signature": ""} if kind == "thinking" else None
        start = start or ({"type": "text", "text": ""} if kind == "text" else dict(block, input={}))
        events.append({"type": "content_block_start", "index": i, "content_block": start})
        if kind == "thinking":
            pieces = [("thinking_delta", "thinking", block["thinking"])]
            pieces.append(("signature_delta", "signature", block["signature"]))
        elif kind == "text":
            pieces = [("text_delta", "text", block["text"])]
        else:
            pieces = [("input_json_delta", "partial_json", orjson.dumps(block["input"]).decode())]
        for delta, field, value in pieces:
            for j in range(0, len(value), 20):
                events.append(
                    {
                        "type": "content_block_delta",
                        "index": i,
                        "delta": {"type": delta, field: value[j : j + 20]},
                    }
                )
        events.append({"type": "content_block_stop", "index": i})
    events.append({"type": "message_stop"})
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


def session(turns: int, seed: int = 7) -> list[tuple[dict[str, Any], bytes]]:
    """(request, streamed response) for each turn of one Claude Code session."""
    rng = random.Random(seed)
    tool_names = (
        "Bash",
        "Read",
        "Edit",
        "Write",
        "Glob",
        "Grep",
        "Task",
        "TodoWrite",
        "WebFetch",
        "WebSearch",
        "NotebookEdit",
        "BashOutput",
        "KillShell",
        "ExitPlanMode",
        "Skill",
    )
    tools = [
        {
            "name": name,
            "description": prose(rng, 1100),
            "input_schema": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": prose(rng, 150)}},
                "required": ["command"],
            },
        }
        for name in tool_names
    ]
    system = [
        {
            "type": "text",
            "text": "x-anthropic-billing-header: cc_version=2.1.332; cc_entrypoint=cli;",
        },
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
        {"type": "text", "text": prose(rng, 10_000), "cache_control": {"type": "ephemeral"}},
    ]
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "<system-reminder>\n" + prose(rng, 800) + "\n</system-reminder>",
                },
                {"type": "text", "text": "Fix the flaky retry test in the payments pipeline."},
            ],
        }
    ]
    out = []
    for turn in range(1, turns + 1):
        for message in messages:
            for block in message["content"]:
                block.pop("cache_control", None)
        messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
        request = {
            "model": "claude-sonnet-4-5",
            "max_tokens": 32000,
            "system": system,
            "tools": tools,
            "messages": orjson.loads(orjson.dumps(messages)),
            "metadata": {"user_id": "user_abc_account__session_1"},
            "thinking": {"type": "enabled", "budget_tokens": 4000},
            "stream": True,
        }
        tool_id = f"toolu_{seed:02d}{turn:04d}{rng.randrange(16**12):012x}"
        reply: list[dict[str, Any]] = [
            {
                "type": "thinking",
                "thinking": prose(rng, rng.randrange(200, 900)),
                "signature": "Eu" + "A" * 300,
            },
            {"type": "text", "text": prose(rng, rng.randrange(60, 300))},
            {
                "type": "tool_use",
                "id": tool_id,
                "name": rng.choice(tool_names),
                "input": {"command": f"pytest -k {rng.choice(IDENTS)} src/{rng.randrange(99)}.py"},
            },
        ]
        out.append((request, sse(reply)))
        messages.append({"role": "assistant", "content": reply})
        result: list[dict[str, Any]] = [
            {
                "type": "tool_result",
                "tool_use_id": tool_id,
                "content": code(rng, rng.randrange(1000, 6000)),
            }
        ]
        if turn % 10 == 0:
            result.append({"type": "text", "text": prose(rng, 150)})
        messages.append({"role": "user", "content": result})
    return out


async def scalar(db: Database, sql: str) -> int:
    rows = await db.fetch_all(sa.text(sql), "measure")
    return int(next(iter(rows[0].values())) or 0)


# What ``--index`` swaps in for the migration's audit_text (to compare; only
# "content" is what gatehouse runs: see docs/audit.md, "Search").
INDEXES = {
    "content": "FTS5 storing the text, as migrated",
    "contentless": "FTS5 content='': no text copy; deleting needs the block's text",
    "contentless-column": "content='', detail=column: no positions, so no phrases",
}


async def run(turns: int, thinking: str, index: str) -> None:
    with tempfile.TemporaryDirectory(prefix="gatehouse-audit-storage-") as directory:
        await measure(Path(directory) / "audit.db", turns, thinking, index)


def swap_index(path: Path, index: str) -> None:
    options = {"contentless": ", content=''", "contentless-column": ", content='', detail=column"}
    if index in options:
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE audit_text")
            conn.execute(
                "CREATE VIRTUAL TABLE audit_text USING fts5(body, tokenize='unicode61', "
                f"columnsize=0{options[index]})"
            )


async def measure(path: Path, turns: int, thinking: str, index: str = "content") -> None:
    db = await Database.open(f"sqlite+aiosqlite:///{path}")
    await db.close()
    swap_index(path, index)
    empty = vacuumed_size(path)
    db = await Database.open(f"sqlite+aiosqlite:///{path}")
    capture = AuditCapture(thinking=thinking)
    unique: dict[str, int] = {}
    naive = spooled = 0
    for turn, (request, stream) in enumerate(session(turns), 1):
        assembler = ResponseAssembler()
        for i in range(0, len(stream), 1400):
            assembler.feed(stream[i : i + 1400])
        response = assembler.blocks()
        entry = capture.entry(
            request_id=f"gh_{turn:04d}",
            ts=1_767_225_600.0 + turn * 30,
            parsed=request,
            response=response,
            developer="dev@acme.com",
            team="payments",
            session_id="6c1f0a3e-5b8e-4a4c-9d7e-2f1b3c4d5e6f",
            repository="github.com/acme/payments-service",
            model="claude-sonnet-4-5",
            status=200,
            usage_id=f"u{turn}",
            cost_micros=12345,
            ttfb_ms=420.0,
            duration_ms=5300.0,
            headers={
                "user-agent": "claude-cli/2.1.332 (external, cli)",
                "anthropic-version": "2023-06-01",
            },
            guard="clean",
            decision="allowed",
        )
        spooled += len(orjson.dumps(entry))
        await write_audit(db, [entry])
        capture.spooled(entry)
        naive += len(orjson.dumps(request)) + sum(len(b.raw) for b in response)
        for block in (*blocks(request), *response):
            unique[block.digest] = len(block.raw)
    unique_bytes = sum(unique.values())
    content = await scalar(db, "SELECT sum(length(content)) FROM audit_blocks")
    envelope = await scalar(
        db,
        "SELECT sum(length(id) + length(kind) + length(session_id) + length(chain)"
        " + length(prev_hash) + length(hash) + length(developer) + length(team)"
        " + length(repository) + length(model)"
        " + length(endpoint) + length(error_type) + length(usage_id) + length(params)"
        " + length(headers) + coalesce(length(base_id), 0) + length(tail) + length(response)"
        " + length(guard) + length(findings) + length(decision) + length(action) + length(actor)"
        " + length(reason) + length(detail) + 8 * 7) FROM audit_records",
    )
    links = await scalar(
        db,
        "SELECT sum(length(digest) + length(chain) + length(record_id) + 8)"
        " FROM audit_block_sessions",
    )
    text = 0 if index != "content" else await scalar(db, "SELECT sum(length(body)) FROM audit_text")
    await db.close()
    grown = vacuumed_size(path) - empty
    stored = content + envelope + links

    def row(label: str, value: int, ratio_to: int | None = None) -> None:
        ratio = f"{value / ratio_to:6.2f}x unique" if ratio_to else ""
        print(f"  {label:<52} {value:>12,} B  {ratio}")

    print(f"audit storage, one {turns}-turn Claude Code session (thinking={thinking})")
    row("unique content (distinct blocks, canonical bytes)", unique_bytes)
    row("naive: every full request + its response", naive, unique_bytes)
    row("stored: block contents", content, unique_bytes)
    row("stored: record envelopes", envelope, unique_bytes)
    row("stored: block->session links", links, unique_bytes)
    row("stored: contents + envelopes + links", stored, unique_bytes)
    row("  + search text (FTS5 content copy)", stored + text, unique_bytes)
    row("SQLite file growth after VACUUM (all of it, FTS index incl.)", grown, unique_bytes)
    for label, size in sorted(breakdown(path).items(), key=lambda kv: -kv[1]):
        row(f"  file: {label}", size, unique_bytes)
    row("spool bytes (entries as spooled)", spooled, unique_bytes)
    print(f"search index: {index} ({INDEXES[index]})")
    for label, value, what in (
        ("transcript store", stored, "block contents + envelopes + links"),
        ("whole SQLite file", grown, "file growth after VACUUM: tables, indexes, search index"),
    ):
        print(f"ratio {label + ' / unique':<26} {value / unique_bytes:5.2f}x  "
              f"{_verdict(value, unique_bytes)}  ({what})")  # fmt: skip
    print(f"ratio naive / transcript store   {naive / stored:5.1f}x  (storing every full request)")
    print(f"ratio naive / whole SQLite file  {naive / grown:5.1f}x")


def _verdict(value: int, unique: int) -> str:
    return f"{'meets' if value / unique <= TARGET else 'MISSES'} the {TARGET}x target"


def vacuumed_size(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("VACUUM")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    conn.close()
    return int(pages) * int(size)


def breakdown(path: Path) -> dict[str, int]:
    """Pages per part of the audit store (SQLite's dbstat), indexes with their table."""
    parts = {
        "audit_text": "search index (FTS5 text copy + inverted index)",
        "audit_blocks": "blocks (table + primary key)",
        "audit_records": "records (table + indexes)",
        "audit_block_sessions": "block->session links (table + indexes)",
    }
    out: dict[str, int] = {}
    with sqlite3.connect(path) as conn:
        try:
            rows = conn.execute("SELECT name, tbl_name FROM sqlite_master").fetchall()
            owner = {name: table for name, table in rows}
            sizes = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
        except sqlite3.OperationalError:  # built without dbstat
            return {}
    conn.close()
    for name, size in sizes:
        table = owner.get(name, name)
        part = next((v for k, v in parts.items() if table.startswith(k)), None)
        if part is not None:
            out[part] = out.get(part, 0) + int(size)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--thinking", choices=("keep", "hash", "drop"), default="keep")
    parser.add_argument(
        "--index", choices=tuple(INDEXES), default="content", help="search index to measure"
    )
    args = parser.parse_args()
    asyncio.run(run(args.turns, args.thinking, args.index))


if __name__ == "__main__":
    main()
