"""PII quality: the built-in `pii` pack against presidio-research's synthetic set.

    .venv/bin/python bench/quality_pii.py [--datasets DIR] [--show N]

Corpus: ``presidio_synth/synth_dataset_v2.json`` (1,500 synthetic sentences with
character-offset spans; read from the shared datasets directory, never copied).
Only the structured types the pack is meant to catch are scored:

    EMAIL_ADDRESS, CREDIT_CARD, IBAN_CODE, US_SSN, IP_ADDRESS, PHONE_NUMBER

Scoring is span-level and by type.  Each rule belongs to one type (email-address
-> email, phone-* -> phone, …); overlapping findings of one type in one text are
merged first, so two phone rules reporting the same number count once.

* a labeled span is a true positive if a finding of its type overlaps it, else a
  false negative;
* a finding overlapping no labeled span of its own type is a false positive.  It
  is reported in one of three bins: ``wrong type`` (it sits on another scored
  type, e.g. a phone rule firing on an SSN), ``other label`` (it sits on an
  unscored label such as ZIP_CODE or DATE_TIME — personal data, but the wrong
  call) or ``unlabeled`` (it sits on nothing).  All three count against precision;
  the ``other label`` bin is also shown separately because flagging a driver's
  licence as a phone number is a much smaller sin than flagging prose.

The overall row pools every type.  Then the same ``pii`` and ``markers`` rules run
over this repository's Python sources and the recorded Claude Code traffic
(``reference/claude-code/**/*.json``, every JSON string value scanned on its
own) to count findings in ordinary code and traffic, where there should be
almost none.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gatehouse.guardrails.engine import Hit, Scanner, mask
from gatehouse.guardrails.rules import RuleSet, load_rules
from quality import ROOT, Score, datasets_dir  # bench/ is on the path when run as a script

LABELS = {
    "EMAIL_ADDRESS": "email",
    "CREDIT_CARD": "card",
    "IBAN_CODE": "iban",
    "US_SSN": "ssn",
    "IP_ADDRESS": "ip",
    "PHONE_NUMBER": "phone",
}
TYPES = tuple(LABELS.values())
# The phone rules that need no "Phone:"-style word next to the number.
UNLABELLED_PHONE_RULES = ("phone-international", "phone-nanp")


def rule_type(rule_id: str) -> str:
    """Which scored type a `pii` rule reports."""
    prefixes = {
        "email": "email",
        "payment-card": "card",
        "iban": "iban",
        "us-ssn": "ssn",
        "ipv4": "ip",
        "ipv6": "ip",
        "phone": "phone",
    }
    for prefix, kind in prefixes.items():
        if rule_id.startswith(prefix):
            return kind
    return "other"


def merged(hits: list[Hit]) -> list[tuple[str, int, int, list[str]]]:
    """(type, start, end, rule ids): overlapping findings of one type joined."""
    by_type: dict[str, list[Hit]] = defaultdict(list)
    for hit in hits:
        by_type[rule_type(hit.rule.id)].append(hit)
    out: list[tuple[str, int, int, list[str]]] = []
    for kind, group in by_type.items():
        group.sort(key=lambda h: (h.start, h.end))
        current: tuple[str, int, int, list[str]] | None = None
        for hit in group:
            if current and hit.start < current[2]:
                current = (kind, current[1], max(current[2], hit.end), [*current[3], hit.rule.id])
                continue
            if current:
                out.append(current)
            current = (kind, hit.start, hit.end, [hit.rule.id])
        if current:
            out.append(current)
    return out


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def score_presidio(scanner: Scanner, path: Path, show: int) -> None:
    items = json.loads(path.read_text())
    scores = {kind: Score(f"pii/{kind}") for kind in TYPES}
    overall = Score("pii/overall (structured types)")
    bins: Counter[str] = Counter()
    fp_rules: Counter[str] = Counter()
    misses: list[str] = []
    false: list[str] = []
    phones = Score("pii/phone, unlabelled-format rules only")
    for item in items:
        text: str = item["full_text"]
        spans = [
            (s["entity_type"], int(s["start_position"]), int(s["end_position"]))
            for s in item["spans"]
        ]
        hits = scanner.scan(text, "user")
        findings = merged(hits)
        for label, start, end in spans:
            kind = LABELS.get(label)
            if kind is None:
                continue
            found = any(f[0] == kind and overlaps((f[1], f[2]), (start, end)) for f in findings)
            scores[kind].add(expected=True, found=found)
            overall.add(expected=True, found=found)
            if not found:
                misses.append(f"  miss {kind:<5} {text[start:end]!r}")
            if kind == "phone":
                bare = any(
                    hit.rule.id in UNLABELLED_PHONE_RULES
                    and overlaps((hit.start, hit.end), (start, end))
                    for hit in hits
                )
                phones.add(expected=True, found=bare)
        for kind, start, end, rule_ids in findings:
            on = [label for label, s, e in spans if overlaps((start, end), (s, e))]
            if kind in {LABELS.get(label) for label in on}:
                continue
            if any(label in LABELS for label in on):
                where = "wrong type"
            elif on:
                where = "other label"
            else:
                where = "unlabeled"
            bins[where] += 1
            fp_rules.update(rule_ids)
            if kind in scores:
                scores[kind].add(expected=False, found=True)
            overall.add(expected=False, found=True)
            context = text[max(0, start - 30) : end + 15]
            false.append(f"  fp   {kind:<5} {where:<11} {','.join(rule_ids)}: {context!r}")
    print(f"presidio-research synthetic set: {len(items)} texts ({path})")
    for kind in TYPES:
        print(scores[kind].row())
    print(overall.row())
    print(phones.row() + "  <- how much rests on context words")
    print(
        "false positives by where they sit: "
        + (", ".join(f"{k} {v}" for k, v in sorted(bins.items())) or "none")
    )
    if fp_rules:
        print("false positives by rule: " + ", ".join(f"{k} {v}" for k, v in fp_rules.items()))
    lenient = Score(
        "pii/overall, other-label FPs excused",
        tp=overall.tp,
        fp=overall.fp - bins["other label"],
        fn=overall.fn,
    )
    print(lenient.row())
    if show:
        for line in misses[:show] + false[:show]:
            print(line)


def json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_strings(item)


def scan_corpus(scanner: Scanner, name: str, texts: Iterator[tuple[str, str]], show: int) -> None:
    counts: Counter[str] = Counter()
    examples: list[str] = []
    documents = characters = 0
    for where, text in texts:
        documents += 1
        characters += len(text)
        for hit in scanner.scan(text, "tool_result"):
            counts[hit.rule.id] += 1
            if len(examples) < show:
                examples.append(f"  {hit.rule.id}: {mask(hit.value)} in {where}")
    total = sum(counts.values())
    detail = ", ".join(f"{k} {v}" for k, v in counts.most_common()) or "none"
    print(f"{name}: {documents} texts, {characters:,} chars -> {total} findings ({detail})")
    for line in examples:
        print(line)


def python_sources(root: Path) -> Iterator[tuple[str, str]]:
    for path in sorted(root.rglob("*.py")):
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            continue
        yield str(path.relative_to(root)), text


def captures(reference: Path) -> Iterator[tuple[str, str]]:
    for path in sorted(reference.rglob("*.json")):
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            yield str(path.relative_to(reference)), path.read_text(errors="replace")
            continue
        for text in json_strings(data):
            yield str(path.relative_to(reference)), text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", help="the shared datasets directory")
    parser.add_argument("--show", type=int, default=0, help="print up to N misses and FPs")
    parser.add_argument(
        "--code",
        action="append",
        default=[],
        metavar="DIR",
        help="also count findings in the *.py files under DIR (e.g. a venv's site-packages)",
    )
    args = parser.parse_args()
    datasets = datasets_dir(args.datasets)
    rules = load_rules()
    pii = Scanner(RuleSet(tuple(rules.by_detector("pii")), rules.allow))
    score_presidio(pii, datasets / "presidio_synth" / "synth_dataset_v2.json", args.show)
    print()
    noise = Scanner(RuleSet(tuple(rules.by_detector("pii") + rules.by_detector("markers"))))
    scan_corpus(noise, "pii+markers over src/**/*.py", python_sources(ROOT / "src"), args.show)
    for extra in args.code:
        scan_corpus(noise, f"pii+markers over {extra}/**/*.py", python_sources(Path(extra)), 0)
    reference = datasets.parent / "reference" / "claude-code"
    if reference.is_dir():
        scan_corpus(noise, "pii+markers over Claude Code captures", captures(reference), args.show)
    else:
        print(f"no Claude Code captures at {reference}")


if __name__ == "__main__":
    main()
