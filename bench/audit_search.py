"""Audit search over a million stored blocks; a 100-turn transcript; an investigation.

Loads ``--blocks`` distinct content blocks (default 1,000,000) of Claude Code–shaped
sessions straight into the audit tables (bulk inserts, bypassing the writer: the
point is the read side), with realistic text: prose over a Zipf-distributed
vocabulary mixed with code identifiers, file paths, shell commands and error
codes.  Each session's records lean on the previous one (base + tail) exactly as
the writer stores them.  Then:

1. runs ~100 varied searches (rare identifiers, common words, phrases, prefixes,
   and each of these with filters: developer, repository, last 24 h, guardrail
   verdict, model) through `gatehouse.audit.search.search` and prints p50/p95
   against the 200 ms target;
2. rebuilds a 100-turn session's transcript (and renders it) against 1 s;
3. investigates a guardrail event in that session end to end against 2 s.

SQLite (a temporary file) by default; ``--database-url postgresql://…`` for
PostgreSQL (its audit tables are emptied first).  ``--blocks 100000`` for a smoke run;
``--keep PATH`` keeps the SQLite file (and reuses it, if there, instead of loading).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from gatehouse.audit.append import text_rowid
from gatehouse.audit.investigate import investigate
from gatehouse.audit.search import Filters, search
from gatehouse.audit.transcript import rebuild, render
from gatehouse.events import Event
from gatehouse.settings import normalize_database_url
from gatehouse.store.db import Database

WORDS = (
    "the of and to in is that it for on with as be this by are from or at an not have "
    "we can will if you all which one their there when use new make should file line "
    "function test error value return update change add remove fix check need first "
    "data request response user session config build run call handle parse write read "
    "invoice refund payment customer account balance ledger charge currency amount "
    "database query index table column migration schema transaction commit rollback "
    "service client server handler router middleware token cache retry timeout limit "
    "deploy release branch merge review pull commit diff patch module package import "
    "class method field type string integer list dict map set async await future task"
).split()
TOOLS = ("Bash", "Read", "Edit", "Write", "Grep", "Glob")
MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "claude-haiku-4-5")
VERDICTS = ("clean",) * 96 + ("flagged", "flagged", "redacted", "blocked")
DAY = 86_400.0


class Corpus:
    """Deterministic realistic text: prose, identifiers, paths, commands, error codes."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        parts = [w for w in WORDS if len(w) > 3]
        self.identifiers = [
            f"{self.rng.choice(parts)}_{self.rng.choice(parts)}{i % 97}" for i in range(20_000)
        ]
        self.vocab = WORDS + self.identifiers
        self.weights = [1.0 / (rank + 1) ** 1.07 for rank in range(len(self.vocab))]
        self.cum: list[float] = []
        total = 0.0
        for w in self.weights:
            total += w
            self.cum.append(total)

    def words(self, n: int) -> list[str]:
        return self.rng.choices(self.vocab, cum_weights=self.cum, k=n)

    def prose(self, lo: int = 8, hi: int = 60) -> str:
        words = self.words(self.rng.randint(lo, hi))
        if self.rng.random() < 0.3:
            words.append(f"src/{self.rng.choice(self.identifiers)}.py:{self.rng.randint(1, 900)}")
        if self.rng.random() < 0.05:
            words.append(f"ERR{self.rng.randint(1000, 99999)}")
        return " ".join(words).capitalize() + "."

    def command(self) -> str:
        target = self.rng.choice(self.identifiers)
        return self.rng.choice(
            (
                f"pytest -q tests/test_{target}.py",
                f"grep -rn {target} src/",
                f"git diff HEAD~1 -- src/{target}.py",
                f"cat src/{target}.py",
            )
        )


def _block(value: dict[str, Any]) -> tuple[str, bytes]:
    raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(raw).hexdigest(), raw


class Generator:
    """Sessions as rows of the four audit tables, streamed in batches."""

    def __init__(self, corpus: Corpus, now: float) -> None:
        self.c = corpus
        self.now = now
        self.blocks = 0
        system = {"type": "text", "text": "You are Claude Code, Anthropic's CLI. " * 40}
        tools = [{"name": t, "description": f"{t} tool. " * 30, "type": "tool"} for t in TOOLS]
        self.context = [("system[0]", *_block(system), "text", system["text"])]
        self.context += [
            (f"tools[{i}]", *_block(t), "tool", t["description"]) for i, t in enumerate(tools)
        ]
        self.samples: list[str] = []

    def session(self, name: str, turns: int, start: float, dev: int) -> Iterator[dict[str, Any]]:
        """Rows of one session: {'blocks', 'texts', 'records', 'links'} per turn."""
        rng = self.c.rng
        developer, repo = f"dev{dev}@example.com", f"github.com/acme/repo{dev % 100}"
        team, model = f"team{dev % 20}", MODELS[dev % 3]
        previous: tuple[str, int, list[list[str]]] | None = None
        for turn in range(turns):
            ts = start + turn * 30.0
            rid = f"gh_{name}_{turn:04d}"
            new: list[tuple[str, str, bytes, str, str]] = []  # path, digest, raw, kind, text
            if previous is None or rng.random() < 0.4:
                text = self.c.prose()
                value = {"type": "text", "text": text}
                kind = "text"
            else:
                text = self.c.prose(20, 120)
                value = {"type": "tool_result", "tool_use_id": f"toolu_{rid}", "content": text}
                kind = "tool_result"
            if rng.random() < 0.02:
                self.samples.append(text)
            new.append((f"messages[{turn * 2}].content[0]", *_block(value), kind, text))
            answer = self.c.prose(10, 80)
            call = {"command": self.c.command()}
            response = [
                ("response[0]", *_block({"type": "text", "text": answer}), "text", answer),
                (
                    "response[1]",
                    *_block(
                        {"type": "tool_use", "id": f"toolu_{rid}", "name": "Bash", "input": call}
                    ),
                    "tool_use",
                    orjson.dumps(call).decode(),
                ),
            ]
            if previous is None:
                base_id, base_len = None, 0
                tail = [[p, d] for p, d, *_ in self.context] + [[new[0][0], new[0][1]]]
                fresh = self.context + new + response
            else:
                base_id, base_len, echo = previous
                tail = [*echo, [new[0][0], new[0][1]]]
                fresh = new + response
            length = base_len + len(tail)
            guard = rng.choice(VERDICTS)
            yield {
                "blocks": [(d, k, len(raw), raw, "", ts) for _, d, raw, k, _ in fresh],
                "texts": [(d, text) for _, d, _, _, text in fresh],
                "links": [(d, name, rid, ts) for _, d, *_ in fresh],
                "record": {
                    "id": rid, "kind": "request", "ts": ts, "session_id": name, "chain": name,
                    "seq": turn + 1, "prev_hash": "0" * 64, "hash": "0" * 64,
                    "developer": developer, "team": team, "repository": repo, "model": model,
                    "endpoint": "/v1/messages", "status": 200, "error_type": "", "usage_id": "",
                    "cost_micros": rng.randint(1000, 90000), "ttfb_ms": 400.0,
                    "duration_ms": 2500.0, "params": "{}",
                    "headers": '{"user-agent":"claude-cli/2.1.332 (external, cli)"}',
                    "base_id": base_id, "base_len": base_len, "tail": orjson.dumps(tail).decode(),
                    "response": orjson.dumps([[p, d] for p, d, *_ in response]).decode(),
                    "guard": guard, "findings": "[]", "decision": "allowed", "action": "",
                    "actor": "", "reason": "", "detail": "{}",
                },
            }  # fmt: skip
            echo = [[f"messages[{turn * 2 + 1}].content[{i}]", d] for i, (_, d, *_) in
                    enumerate(response)]  # fmt: skip
            previous = (rid, length, echo)


RECORD_COLUMNS = (
    "id kind ts session_id chain seq prev_hash hash developer team repository model endpoint "
    "status error_type usage_id cost_micros ttfb_ms duration_ms params headers base_id base_len "
    "tail response guard findings decision action actor reason detail"
).split()


def batches(gen: Generator, target: int, transcript_at: float) -> Iterator[tuple[list[Any], ...]]:
    """Rows in batches of about 20,000 blocks until ``target`` blocks are out."""
    rng = gen.c.rng
    blocks: list[Any] = []
    texts: list[Any] = []
    links: list[Any] = []
    records: list[Any] = []
    shared = {digest for _, digest, *_ in gen.context}  # every session's system and tools
    stored: set[str] = set()
    plan: list[tuple[str, int, float, int]] = [("bench100", 100, transcript_at, 7)]
    start = gen.now - 90 * DAY
    sessions = target / 130  # about 43 turns of 3 new blocks each
    n = 0
    while gen.blocks + len(blocks) < target:
        if not plan:
            turns = rng.randint(5, 80)
            plan.append((f"s{n:06d}", turns, start + (gen.now - start) * n / sessions, n))
            n += 1
        name, turns, at, dev = plan.pop()
        for turn in gen.session(name, turns, min(at, gen.now - 3600), dev % 500):
            for row, text in zip(turn["blocks"], turn["texts"], strict=True):
                if row[0] in shared:
                    if row[0] in stored:
                        continue
                    stored.add(row[0])
                blocks.append(row)
                texts.append(text)
            links.extend(turn["links"])
            records.append(tuple(turn["record"][c] for c in RECORD_COLUMNS))
        if len(blocks) >= 20_000:
            gen.blocks += len(blocks)
            yield blocks, texts, links, records
            blocks, texts, links, records = [], [], [], []
    if blocks:
        gen.blocks += len(blocks)
        yield blocks, texts, links, records


def load_sqlite(path: str, gen: Generator, target: int, at: float) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA synchronous=OFF")
    marks = ", ".join("?" for _ in RECORD_COLUMNS)
    for blocks, texts, links, records in batches(gen, target, at):
        with conn:
            conn.executemany("INSERT OR IGNORE INTO audit_blocks VALUES (?, ?, ?, ?, ?, ?)", blocks)
            conn.executemany(
                "INSERT INTO audit_text (rowid, body) VALUES (?, ?)",
                [(text_rowid(d), body) for d, body in texts],
            )
            conn.executemany("INSERT OR IGNORE INTO audit_block_sessions VALUES (?,?,?,?)", links)
            conn.executemany(
                f"INSERT INTO audit_records ({', '.join(RECORD_COLUMNS)}) VALUES ({marks})",  # noqa: S608
                records,
            )
        _progress(gen.blocks, target)
    conn.execute("ANALYZE")
    conn.execute("INSERT INTO audit_text(audit_text) VALUES ('optimize')")
    conn.commit()
    conn.close()


async def load_postgres(url: str, gen: Generator, target: int, at: float) -> None:
    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql").render_as_string(False))
    try:
        for table in ("audit_text", "audit_block_sessions", "audit_records", "audit_blocks"):
            await conn.execute(f"TRUNCATE {table}")
        await conn.execute("DELETE FROM events WHERE kind IN ('bench_flagged')")
        for blocks, texts, links, records in batches(gen, target, at):
            async with conn.transaction():
                await conn.copy_records_to_table("audit_blocks", records=blocks)
                await conn.copy_records_to_table(
                    "audit_text", records=texts, columns=["digest", "body"]
                )
                await conn.copy_records_to_table(
                    "audit_block_sessions", records=list({r[:2]: r for r in links}.values())
                )
                await conn.copy_records_to_table(
                    "audit_records", records=records, columns=RECORD_COLUMNS
                )
            _progress(gen.blocks, target)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


def _progress(done: int, target: int) -> None:
    print(f"\r  loaded {done:,} / {target:,} blocks", end="", file=sys.stderr, flush=True)


def queries(gen: Generator) -> list[tuple[str, Filters]]:
    rng = random.Random(7)
    c = gen.c
    rare = [rng.choice(c.identifiers[5000:]) for _ in range(20)]
    common = [rng.choice(WORDS[:60]) for _ in range(10)]
    phrases = []
    for text in rng.sample(gen.samples, min(15, len(gen.samples))):
        words = text.rstrip(".").split()
        i = rng.randrange(max(1, len(words) - 2))
        phrases.append('"' + " ".join(words[i : i + 2]) + '"')
    prefixes = [rng.choice(c.identifiers)[:5] + "*" for _ in range(10)]
    texts = rare + common + phrases + prefixes
    dev = rng.randrange(500)
    filters = [
        Filters(developer=f"dev{dev}@example.com"),
        Filters(repository=f"github.com/acme/repo{dev % 100}"),
        Filters(since=gen.now - DAY),
        Filters(guard="flagged"),
        Filters(model=MODELS[1], since=gen.now - 7 * DAY),
    ]
    out = [(t, Filters()) for t in texts]
    out += [(rng.choice(texts), f) for f in filters for _ in range(9)]
    return out


async def measure(url: str, gen: Generator) -> dict[str, Any]:
    db = await Database.open(url)
    results: dict[str, Any] = {}
    try:
        timings = []
        slowest = []
        hits = 0
        for text, filters in queries(gen):
            started = time.perf_counter()
            found = await search(db, text, filters, limit=50)
            timings.append((time.perf_counter() - started) * 1000)
            slowest.append((timings[-1], text, _given(filters), len(found.hits)))
            hits += len(found.hits)
        timings.sort()
        for ms, text, given, n in sorted(slowest, reverse=True)[:5]:
            print(f"    slow: {ms:7.1f} ms  {text!r} {given} → {n} hits")
        p50 = statistics.median(timings)
        p95 = timings[int(len(timings) * 0.95) - 1]
        results["search"] = {"queries": len(timings), "p50_ms": p50, "p95_ms": p95,
                             "max_ms": timings[-1], "hits": hits}  # fmt: skip
        print(f"  search   {len(timings)} queries: p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  "
              f"max {timings[-1]:7.1f} ms  {_ok(p95, 200)} (p95 ≤ 200 ms)")  # fmt: skip
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            transcript = await rebuild(db, "bench100")
            text = render(transcript, "html")
            runs.append((time.perf_counter() - started) * 1000)
        results["transcript_ms"] = runs
        size = f"{len(transcript.turns)} turns, {len(text):,} bytes of html"
        print(f"  transcript ({size}): first {runs[0]:6.1f} ms  best {min(runs):6.1f} ms  "
              f"{_ok(runs[0], 1000)} (≤ 1 s)")  # fmt: skip
        event = Event(kind="bench_flagged", subject="bench", session_id="bench100",
                      developer="dev7@example.com",
                      detail={"request_id": "gh_bench100_0050"})  # fmt: skip
        await db.insert_events([event])
        started = time.perf_counter()
        found_inv = await investigate(db, event.id, actor="bench", via="bench")
        elapsed = (time.perf_counter() - started) * 1000
        results["investigate_ms"] = elapsed
        print(f"  investigate (event → transcript, {len(found_inv.developer_sessions)} developer "
              f"sessions): {elapsed:6.1f} ms  {_ok(elapsed, 2000)} (≤ 2 s)")  # fmt: skip
        count = await db.fetch_all(sa.text("SELECT COUNT(*) AS n FROM audit_blocks"), "count")
        results["blocks"] = int(count[0]["n"])
    finally:
        await db.close()
    return results


def _given(filters: Filters) -> dict[str, Any]:
    names = Filters.__dataclass_fields__
    return {k: getattr(filters, k) for k in names if getattr(filters, k) not in ("", None)}


def _ok(value: float, target: float) -> str:
    return "ok" if value <= target else "OVER"


async def main_async(args: argparse.Namespace) -> None:
    now = time.time()
    gen = Generator(Corpus(args.seed), now)
    if args.database_url:
        url = normalize_database_url(args.database_url)
        await (await Database.open(url)).close()  # migrate
        print(f"PostgreSQL {make_url(url).render_as_string(hide_password=True)}")
        started = time.perf_counter()
        await load_postgres(url, gen, args.blocks, now - 2 * DAY)
    elif args.keep and Path(args.keep).exists():
        path = args.keep
        url = normalize_database_url(f"sqlite:///{path}")
        saved = orjson.loads(Path(f"{path}.json").read_bytes())
        gen = Generator(Corpus(args.seed), saved["now"])
        gen.samples = saved["samples"]
        print(f"SQLite {path} (kept from an earlier run)")
        started = time.perf_counter()
    else:
        path = args.keep or str(
            Path(tempfile.mkdtemp(prefix="gatehouse-audit-bench-")) / "audit.db"
        )
        url = normalize_database_url(f"sqlite:///{path}")
        await (await Database.open(url)).close()
        print(f"SQLite {path}")
        started = time.perf_counter()
        load_sqlite(path, gen, args.blocks, now - 2 * DAY)
        if args.keep:
            Path(f"{path}.json").write_bytes(orjson.dumps({"now": now, "samples": gen.samples}))
    print(f"\n  loaded in {time.perf_counter() - started:.0f} s")
    results = await measure(url, gen)
    print(f"  ({results['blocks']:,} blocks stored)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=1_000_000, help="distinct blocks to load")
    parser.add_argument("--database-url", default="", help="PostgreSQL URL (default: SQLite)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--keep", default="", help="SQLite file to keep the loaded data in (reused if there)"
    )
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
