"""Guardrail screening latency on a Claude Code–shaped request: cold, next turn, MB/s.

Builds a request of about 200k tokens (~800 KB) the way Claude Code sends one —
a system prompt, tool definitions and a long session of Read/Bash/Grep tool
calls whose results are this repository's own source files (with line numbers,
as Read shows them) — and times, in one process:

- baseline: ``orjson.loads`` of the body (what the gateway already pays);
- cold: every block new to the process (blocks addressed, scanned, decided);
- next turn: the same history plus one new user text and one new tool result
  (the verdict cache answers for the rest) — p50/p99 over many turns;
- throughput: scanner MB/s over the whole text of the request.

Targets: cold ≤ 50 ms, next turn ≤ 5 ms p50.  Run: ``python bench/guard.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import orjson

from gatehouse.content import block_texts, blocks
from gatehouse.guardrails.screen import Screener, load_screener
from gatehouse.policy.guardactions import DEFAULT_ACTIONS

ROOT = Path(__file__).resolve().parents[1]


def numbered(text: str) -> str:
    return "\n".join(f"{i:>6}→{line}" for i, line in enumerate(text.splitlines(), 1))


def session(target_bytes: int) -> tuple[dict[str, Any], list[str]]:
    sources = sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "tests").rglob("*.py"))
    texts = [numbered(p.read_text()) for p in sources]
    system = [
        {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
        {"type": "text", "text": (ROOT / "docs" / "architecture.md").read_text()[:12000]},
    ]
    tools = [
        {
            "name": name,
            "description": (ROOT / "README.md").read_text()[:2500],
            "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}},
        }
        for name in ("Read", "Bash", "Grep", "Glob", "Edit", "Write", "TodoWrite", "WebFetch")
    ]
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": [{"type": "text", "text": "Find why the spool stalls."}]}
    ]
    size, i = 0, 0
    while size < target_bytes:
        text = texts[i % len(texts)]
        messages.append(_use(i, str(sources[i % len(sources)])))
        messages.append(_result(i, text))
        size += len(text)
        i += 1
    body = {"model": "claude-sonnet-4-6", "max_tokens": 32000, "stream": True}
    return {**body, "system": system, "tools": tools, "messages": messages}, texts


def _use(i: int, path: str) -> dict[str, Any]:
    return {
        "role": "assistant",
        "content": [
            {"type": "text", "text": f"Reading {path}."},
            {
                "type": "tool_use",
                "id": f"toolu_{i:04}",
                "name": "Read",
                "input": {"file_path": path},
            },
        ],
    }


def _result(i: int, text: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": f"toolu_{i:04}", "content": text}],
    }


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kb", type=int, default=800, help="request size in KB (≈ 4 B/token)")
    parser.add_argument("--turns", type=int, default=200)
    args = parser.parse_args()
    request, texts = session(args.kb * 1000)
    raw = orjson.dumps(request)
    started = time.perf_counter()
    screener = load_screener()
    print(f"rules compiled in {time.perf_counter() - started:.2f} s")
    print(f"request: {len(raw) / 1e6:.2f} MB, {len(request['messages'])} messages")

    parse_ms = statistics.median(timed(lambda: orjson.loads(raw)) for _ in range(20))
    address_ms = statistics.median(timed(lambda: blocks(request)) for _ in range(10))
    print(f"baseline orjson.loads: {parse_ms:.2f} ms; addressing every block: {address_ms:.2f} ms")

    colds = []
    for _ in range(5):
        fresh = Screener(screener.scanner)
        colds.append(timed(lambda s=fresh: s.screen(blocks(request), DEFAULT_ACTIONS)))
    cold = statistics.median(colds)
    print(f"cold (every block new): {cold:.1f} ms  (target ≤ 50 ms; {cold / parse_ms:.1f}× parse)")

    warm = Screener(screener.scanner)
    warm.screen(blocks(request), DEFAULT_ACTIONS)
    turns = []
    history = request["messages"]
    for n in range(args.turns):
        turn = dict(request)
        prompt = {"role": "user", "content": [{"type": "text", "text": f"now check case {n}"}]}
        turn["messages"] = [
            *history,
            _use(90_000 + n, "x.py"),
            _result(90_000 + n, texts[n % 40]),
            prompt,
        ]
        turns.append(timed(lambda t=turn: warm.screen(blocks(t), DEFAULT_ACTIONS)))
    turns.sort()
    p50, p99 = turns[len(turns) // 2], turns[int(len(turns) * 0.99)]
    ratio = p50 / parse_ms
    print(f"next turn: p50 {p50:.2f} ms, p99 {p99:.2f} ms  (target p50 ≤ 5 ms; {ratio:.1f}× parse)")

    pieces = [t for b in blocks(request) for _, t in block_texts(b)]
    chars = sum(len(t) for t in pieces)
    scanner = screener.scanner
    ms = statistics.median(timed(lambda: [scanner.scan(t) for t in pieces]) for _ in range(3))
    rate = chars / 1e6 / (ms / 1000)
    print(f"scanner throughput: {rate:.1f} MB/s ({chars / 1e6:.2f} MB in {ms:.1f} ms)")


if __name__ == "__main__":
    main()
