"""Quality of the built-in SECRETS pack on public labeled corpora (never copied here).

Corpora (under ``--datasets``, see each folder's README.md):

* ``gitleaks/gitleaks_rule_cases.jsonl`` — the literal true/false-positive strings of
  gitleaks' rule tests; a case is positive when labeled ``secret``.
* ``detect_secrets/detect_secrets_plugin_cases.jsonl`` — detect-secrets' plugin test
  parameters; positive when ``should_flag``.
* ``credsweeper/tests`` — CredSweeper's sample files with its expected findings
  as line-level ground truth: every line of every text sample is a case, positive when
  an expected finding sits on it.  The truth is ``data/no_ml.json`` (its rules without
  the ML filter: what a pattern scanner should find); the row for ``data/output.json``
  (the ML-filtered run, which drops e.g. Korean-labelled password lines) is printed too.

A case counts as found when any secrets-detector finding touches it.  Each corpus is
scored twice: on every case, and without a few clearly-defined categories that are not
credential detection (printed with their counts and reasons).  Then the scanner runs
over this repository's own Python sources and tests and over the Claude Code captures
(findings there are false alarms, except the fake keys in tests), and its throughput is
measured on a few megabytes of mixed text.

    python bench/quality_secrets.py [--datasets DIR] [--show-misses N]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from gatehouse.guardrails.engine import Scanner
from gatehouse.guardrails.rules import RuleSet, load_rules
from quality import ROOT, Score, datasets_dir


@dataclass
class Case:
    corpus: str
    text: str
    expected: bool
    excluded: str = ""  # why the case is left out of the "without exclusions" score
    where: str = ""  # for --show-misses


def secrets_scanner() -> Scanner:
    rules = load_rules()
    return Scanner(RuleSet(tuple(rules.by_detector("secrets")), rules.allow))


# ---------------------------------------------------------------- gitleaks
# gitleaks' fps for gcp-api-key include well-formed keys that gitleaks drops with an
# allowlist of *known* public keys (published Firebase / Chrome keys): no pattern can
# tell them apart from a live key, so they are not a detection question.
_WELL_FORMED_GCP = re.compile(r"^AIza[0-9A-Za-z_-]{35}$")


def gitleaks_cases(root: Path) -> Iterator[Case]:
    for line in (root / "gitleaks" / "gitleaks_rule_cases.jsonl").read_text().splitlines():
        row = json.loads(line)
        expected = row["label"] == "secret"
        excluded = ""
        text = row["text"].strip()
        if not expected and row["rule_id"] == "gcp-api-key" and _WELL_FORMED_GCP.match(text):
            excluded = "gcp-api-key fps that are well-formed keys on gitleaks' public-key list"
        yield Case("gitleaks", row["text"], expected, excluded, row["rule_id"])


# ---------------------------------------------------------------- detect-secrets
# A run of one placeholder character: detect-secrets' plugin tests use 'AKCxxxxxxxxxx',
# 'AKIAZZZZZZZZZZZZZZZZ' as *positives* for their regexes, while gitleaks' corpus (and
# this pack, on purpose) label such placeholders not-secret.
_FILLER = re.compile(r"([xXzZ])\1{7,}")


def detect_secrets_cases(root: Path) -> Iterator[Case]:
    path = root / "detect_secrets" / "detect_secrets_plugin_cases.jsonl"
    for line in path.read_text().splitlines():
        row = json.loads(line)
        plugin, text, expected = row["plugin_test"], row["text"], bool(row["should_flag"])
        excluded = ""
        if plugin == "ip_public_test.py":
            excluded = "ip_public: public IP addresses are not credentials"
        elif plugin == "high_entropy_strings_test.py":
            excluded = "high_entropy_strings: unformatted '{secret}' test templates"
        elif expected and _FILLER.search(text):
            excluded = "placeholder-filled 'keys' (xxxx/ZZZZ) that detect-secrets' regex tests flag"
        yield Case("detect-secrets", text, expected, excluded, plugin)


# ---------------------------------------------------------------- CredSweeper
# Expected findings that are identifiers or public values rather than credentials.
_NOT_CREDENTIALS = {
    "UUID",
    "Nonce",
    "Salt",
    "Firebase Domain",
    "AWS S3 Bucket",
    "Tencent WeChat API App ID",
}


def _decode(raw: bytes) -> str | None:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16", "replace")
    if b"\x00" in raw[:4096]:
        return None  # binary
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def credsweeper_documents(
    root: Path, truth: str = "no_ml.json"
) -> Iterator[tuple[str, str, dict[int, str]]]:
    """(file name, text, {line number: exclusion reason or ""} of expected lines)."""
    base = root / "credsweeper" / "tests"
    reasons: dict[str, dict[int, set[str]]] = {}
    for finding in json.loads((base / "data" / truth).read_text()):
        reason = ""
        if finding["rule"] in _NOT_CREDENTIALS:
            reason = f"CredSweeper '{finding['rule']}' findings are not credentials"
        for line in finding["line_data_list"]:
            name = line["path"].removeprefix("./tests/samples/")
            reasons.setdefault(name, {}).setdefault(line["line_num"], set()).add(reason)
    # a line is excluded only when every expected finding on it is excluded
    expected = {
        name: {number: "" if "" in why else min(why) for number, why in lines.items()}
        for name, lines in reasons.items()
    }
    for path in sorted((base / "samples").iterdir()):
        if not path.is_file():
            continue
        text = _decode(path.read_bytes())
        if text is None:
            continue
        yield path.name, text, expected.get(path.name, {})


def credsweeper_cases(
    root: Path, scanner: Scanner, truth: str = "no_ml.json"
) -> Iterator[tuple[Case, bool]]:
    for name, text, expected in credsweeper_documents(root, truth):
        lines = text.split("\n")
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line) + 1)
        flagged: set[int] = set()
        for hit in scanner.scan(text):
            first = _line_of(starts, hit.start)
            last = _line_of(starts, max(hit.start, hit.end - 1))
            flagged.update(range(first, last + 1))
        for number, line in enumerate(lines, 1):
            if not line.strip() and number not in expected:
                continue
            reason = expected.get(number, "")
            case = Case("credsweeper", line, number in expected, reason, f"{name}:{number}")
            yield case, number in flagged


def _line_of(starts: list[int], offset: int) -> int:
    lo, hi = 0, len(starts) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if starts[mid] <= offset:
            lo = mid
        else:
            hi = mid - 1
    return lo + 1


# ---------------------------------------------------------------- scoring
def score(
    name: str, results: list[tuple[Case, bool]], show: int
) -> tuple[Score, Score, Counter[str]]:
    every, kept = Score(f"{name} (all cases)"), Score(f"{name} (without exclusions)")
    reasons: Counter[str] = Counter()
    misses: list[str] = []
    alarms: list[str] = []
    for case, found in results:
        every.add(expected=case.expected, found=found)
        if case.excluded:
            reasons[case.excluded] += 1
            continue
        kept.add(expected=case.expected, found=found)
        if case.expected and not found:
            misses.append(f"  miss  {case.where}: {case.text[:110]!r}")
        elif found and not case.expected:
            alarms.append(f"  false {case.where}: {case.text[:110]!r}")
    if show:
        for line in misses[:show] + alarms[:show]:
            print(line)
    return every, kept, reasons


def scan_cases(cases: Iterator[Case], scanner: Scanner) -> list[tuple[Case, bool]]:
    return [(case, bool(scanner.scan(case.text))) for case in cases]


def count_findings(
    paths: list[Path], scanner: Scanner, read: Callable[[Path], str]
) -> tuple[int, Counter[str]]:
    by_rule: Counter[str] = Counter()
    for path in paths:
        for hit in scanner.scan(read(path)):
            by_rule[hit.rule.id] += 1
    return sum(by_rule.values()), by_rule


def throughput(scanner: Scanner, text: str) -> tuple[float, float]:
    """(MB, MB/s) of one scan over ``text`` repeated to about 4 MB."""
    text = (text * (4_000_000 // max(len(text), 1) + 1))[:4_000_000]
    size = len(text.encode()) / 1e6
    started = time.perf_counter()
    scanner.scan(text)
    return size, size / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets")
    parser.add_argument("--show-misses", type=int, default=0, metavar="N")
    args = parser.parse_args()
    root = datasets_dir(args.datasets)
    scanner = secrets_scanner()
    print(f"secrets rules: {len(scanner.ruleset.rules)}  (prefiltered: {scanner.prefiltered})")

    corpora = {
        "gitleaks": scan_cases(gitleaks_cases(root), scanner),
        "detect-secrets": scan_cases(detect_secrets_cases(root), scanner),
        "credsweeper": list(credsweeper_cases(root, scanner)),
    }
    ml_truth = list(credsweeper_cases(root, scanner, "output.json"))
    total_all, total_kept = Score("COMBINED (all cases)"), Score("COMBINED (without exclusions)")
    for name, results in corpora.items():
        every, kept, reasons = score(name, results, args.show_misses)
        print(every.row())
        print(kept.row())
        for reason, count in reasons.most_common():
            print(f"    excluded {count:>4}: {reason}")
        for total, part in ((total_all, every), (total_kept, kept)):
            total.tp += part.tp
            total.fp += part.fp
            total.fn += part.fn
            total.tn += part.tn
    print(total_all.row())
    print(total_kept.row())
    every, kept, _ = score("credsweeper, ML truth", ml_truth, 0)
    print("(for reference, CredSweeper scored against its ML-filtered output.json:)")
    print(every.row())
    print(kept.row())

    print("\nfindings on ordinary text (false alarms, except the fake keys in tests):")
    for label, pattern in (("src/**/*.py", "src"), ("tests/**/*.py", "tests")):
        files = sorted((ROOT / pattern).rglob("*.py"))
        count, rules = count_findings(files, scanner, lambda p: p.read_text(errors="replace"))
        print(f"  {label:<34} files {len(files):>5}  findings {count:>4}  {dict(rules)}")
    captures = sorted((ROOT.parent / "shared" / "reference" / "claude-code").rglob("*.json"))
    count, rules = count_findings(captures, scanner, lambda p: p.read_text(errors="replace"))
    label = "claude-code captures"
    print(f"  {label:<34} files {len(captures):>5}  findings {count:>4}  {dict(rules)}")

    ordinary = [p.read_text(errors="replace") for p in sorted((ROOT / "src").rglob("*.py"))]
    ordinary += [p.read_text(errors="replace") for p in captures]
    dense = [text for _, text, _ in credsweeper_documents(root)]
    print()
    for label, parts in (("ordinary source + captures", ordinary), ("secret-dense samples", dense)):
        size, rate = throughput(scanner, "\n".join(parts))
        print(f"throughput: {rate:6.1f} MB/s over {size:.1f} MB of {label}")


if __name__ == "__main__":
    main()
