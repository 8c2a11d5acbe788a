"""Path rules over a big Claude Code body, against baselines measured in the same run.

Builds an ~800 KB body shaped like a long Claude Code session (the captured
2.1.332 prefix, then hundreds of Read / Grep / Glob / Bash / Edit turns with
multi-KB results) and 1,000 path rules of the kinds security writes (anchored
directories, extensions, dotfiles, nested globs).  Times, per body:

- baseline: `orjson.loads` of the body (what the proxy already pays to parse it);
- `apply_path_rules` with no matching result (the usual case: original bytes),
  cold (a fresh `PathRules`, every path seen for the first time) and warm (the
  same rules again: Claude Code resends its history every turn);
- the same with matches (20 results redacted, spliced into the original bytes);
- compiling the 1,000 rules (once per policy version and repository).

Run: `python bench/paths.py [--rules 1000] [--turns 400] [--runs 200]`.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from gatehouse.policy.document import PathRule
from gatehouse.policy.pathmatch import PathRules
from gatehouse.policy.paths import apply_path_rules

FIXTURE = Path(__file__).parents[1] / "tests/fixtures/claude_code/p_tool_loop_2.1.332.json"
ROOT = "/home/dev/work/tooluse/repo"
LINE = "    return compute(value, options=DEFAULTS) if value is not None else fallback()  # x\n"


def rules(count: int) -> list[PathRule]:
    out = []
    for n in range(count):
        kind = n % 5
        glob = (
            f"team{n}/secrets/**",
            f"**/*.ext{n}",
            f"**/.env{n}*",
            f"infra/prod{n}/**/*.tf",
            f"config/*/prod{n}.yaml",
        )[kind]
        out.append(PathRule(glob, "block" if n % 7 == 0 else "redact", f"rule{n}"))
    out.append(PathRule("secrets/**", "redact", "secrets"))
    return out


def body(turns: int, matching: int) -> dict[str, Any]:
    doc = copy.deepcopy(orjson.loads(FIXTURE.read_bytes())["body"])
    messages = doc["messages"][:2]
    result = LINE * 20  # ~1.7 KB, a typical Read
    for i in range(turns):
        tool, tool_input = [
            ("Read", {"file_path": f"{ROOT}/src/pkg{i % 40}/module{i}.py"}),
            ("Grep", {"pattern": "compute", "output_mode": "content"}),
            ("Glob", {"pattern": "**/*.py"}),
            ("Bash", {"command": f"cat src/pkg{i % 40}/notes{i}.md | head -n 40"}),
            ("Edit", {"file_path": f"{ROOT}/src/m{i}.py", "old_string": "a", "new_string": "b"}),
        ][i % 5]
        content = result
        if tool in ("Grep", "Glob"):
            content = "\n".join(
                f"{ROOT}/src/pkg{j}/module{j}.py:{j}:{LINE[:60]}" for j in range(25)
            )
        if i < matching:
            tool, tool_input = "Read", {"file_path": f"{ROOT}/secrets/key{i}.env"}
        use_id = f"toolu_{i:05d}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Looking at the next file."},
                    {"type": "tool_use", "id": use_id, "name": tool, "input": tool_input},
                ],
            }
        )
        block = {"tool_use_id": use_id, "type": "tool_result", "content": content}
        messages.append({"role": "user", "content": [block]})
    doc["messages"] = messages
    return doc


def timings(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=400)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    defined = rules(args.rules)
    started = time.perf_counter()
    compiled = PathRules(defined)
    compile_ms = (time.perf_counter() - started) * 1000
    print(f"{len(defined)} rules compiled in {compile_ms:.1f} ms")
    for label, matching in (("no match", 0), ("20 redacted", 20)):
        parsed = body(args.turns, matching)
        raw = orjson.dumps(parsed)
        results = sum(1 for m in parsed["messages"] if m["role"] == "user") - 1
        print(f"\n{label}: body {len(raw) / 1024:.0f} KB, {results} tool results")
        p50, p99 = timings(lambda raw=raw: orjson.loads(raw), args.runs)  # type: ignore[misc]
        print(f"  baseline orjson.loads     p50 {p50 * 1e3:7.2f} ms  p99 {p99 * 1e3:7.2f} ms")
        base = p50
        cold = timings(
            lambda raw=raw, parsed=parsed: apply_path_rules(raw, parsed, PathRules(defined)),  # type: ignore[misc]
            max(5, args.runs // 10),
        )
        outcome = apply_path_rules(raw, parsed, compiled)
        assert len(outcome.applied) == matching, outcome.applied
        warm = timings(
            lambda raw=raw, parsed=parsed: apply_path_rules(raw, parsed, compiled), args.runs
        )  # type: ignore[misc]
        for name, (q50, q99) in (("cold (compile + scan)", cold), ("warm (history resent)", warm)):
            print(
                f"  {name:<25} p50 {q50 * 1e3:7.2f} ms  p99 {q99 * 1e3:7.2f} ms"
                f"  ({q50 / base:.2f}x parse)"
            )


if __name__ == "__main__":
    main()
