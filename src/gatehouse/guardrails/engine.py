"""The scanning engine: one compiled database for every rule, run over one text.

Three stages, cheapest first:

1. **Prefilter** — every rule's pattern is compiled into one Hyperscan
   (Vectorscan) database in prefilter mode; a single pass over the text says
   which rules *may* match.  Without Hyperscan (a platform with no wheel) every
   rule is a candidate and the keyword stage does the narrowing.
2. **Keywords** — a rule with ``keywords`` is tried only where one of them
   appears (one Aho-Corasick pass over the lower-cased text, made only when a
   candidate rule has keywords).
3. **Confirm** — the candidate rules run in RE2 (linear time, no catastrophic
   backtracking) to find the exact spans; each span then passes the rule's
   validator, entropy floor, stopwords and allow-lists.

Prefiltering never drops a match, so the findings are RE2's whatever the first
two stages did.  Offsets are characters of the text.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import ahocorasick
import re2

from gatehouse.guardrails.rules import Rule, RuleSet
from gatehouse.guardrails.validators import VALIDATORS, shannon_entropy

hyperscan: Any
try:
    import hyperscan
except ImportError:  # pragma: no cover - the wheel exists for every platform we test
    hyperscan = None

log = logging.getLogger("gatehouse.guardrails")


@dataclass(frozen=True, slots=True)
class Hit:
    rule: Rule
    start: int
    end: int
    value: str


@dataclass(slots=True)
class _Compiled:
    rule: Rule
    regex: Any  # re2 pattern
    allow: tuple[Any, ...]


class Scanner:
    """Compiled once per rule set; `scan` is safe to call from any thread."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.ruleset = ruleset
        self._rules = [_compile(rule, ruleset.allow) for rule in ruleset.rules]
        self._always: list[int] = []  # rules the prefilter cannot express: always candidates
        self._database = self._prefilter() if hyperscan is not None else None
        self._keywords = _automaton(ruleset.rules)

    @property
    def prefiltered(self) -> bool:
        return self._database is not None

    def scan(self, text: str, origin: str = "user") -> list[Hit]:
        """Every finding in ``text`` of the rules that read blocks of ``origin``."""
        if not text:
            return []
        candidates = self._candidates(text)
        if not candidates:
            return []
        keywords: set[int] | None = None
        hits: list[Hit] = []
        for index in sorted(candidates):
            compiled = self._rules[index]
            rule = compiled.rule
            if origin not in rule.where:
                continue
            if rule.keywords:
                if keywords is None:
                    keywords = self._present(text)
                if index not in keywords:
                    continue
            hits.extend(_confirm(compiled, text))
        return hits

    def _candidates(self, text: str) -> set[int]:
        if self._database is None:
            return set(range(len(self._rules)))
        found: set[int] = set(self._always)

        def on_match(rule_id: int, start: int, end: int, flags: int, context: Any) -> None:
            found.add(rule_id)

        self._database.scan(text.encode("utf-8", "surrogatepass"), match_event_handler=on_match)
        return found

    def _present(self, text: str) -> set[int]:
        """The rules one of whose keywords appears in ``text``."""
        present: set[int] = set()
        if self._keywords is None:
            return present
        for _, rule_indexes in self._keywords.iter(text.lower()):
            present.update(rule_indexes)
        return present

    def _prefilter(self) -> Any:
        expressions: list[bytes] = []
        ids: list[int] = []
        flags: list[int] = []
        base = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH
        base |= hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_ALLOWEMPTY
        for index, compiled in enumerate(self._rules):
            rule = compiled.rule
            flag = base | (hyperscan.HS_FLAG_CASELESS if rule.ignore_case else 0)
            if not _compiles(rule.pattern, flag):
                log.info("guardrail rule %s is confirmed without the prefilter", rule.id)
                self._always.append(index)
                continue
            expressions.append(rule.pattern.encode())
            ids.append(index)
            flags.append(flag)
        if not expressions:
            return None
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        database.compile(expressions=expressions, ids=ids, elements=len(ids), flags=flags)
        return database


def _compiles(pattern: str, flag: int) -> bool:
    try:
        hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK).compile(
            expressions=[pattern.encode()], ids=[0], elements=1, flags=[flag]
        )
    except hyperscan.error:
        return False
    return True


def _compile(rule: Rule, allow: Sequence[str]) -> _Compiled:
    options = re2.Options()
    options.case_sensitive = not rule.ignore_case
    patterns = [re2.compile(p) for p in (*rule.allow, *allow)]
    return _Compiled(rule, re2.compile(rule.pattern, options), tuple(patterns))


def _automaton(rules: Sequence[Rule]) -> Any:
    by_keyword: dict[str, list[int]] = {}
    for index, rule in enumerate(rules):
        for keyword in rule.keywords:
            by_keyword.setdefault(keyword, []).append(index)
    if not by_keyword:
        return None
    automaton = ahocorasick.Automaton()
    for keyword, indexes in by_keyword.items():
        automaton.add_word(keyword, tuple(indexes))
    automaton.make_automaton()
    return automaton


def _confirm(compiled: _Compiled, text: str) -> list[Hit]:
    rule = compiled.rule
    hits = []
    for match in compiled.regex.finditer(text):
        start, end = match.span(rule.group)
        if start < 0 or start == end:
            continue
        value = text[start:end]
        if rule.validator and not VALIDATORS[rule.validator](value):
            continue
        if rule.entropy and shannon_entropy(value) < rule.entropy:
            continue
        lowered = value.lower()
        if any(word in lowered for word in rule.stopwords):
            continue
        if any(pattern.search(value) for pattern in compiled.allow):
            continue
        hits.append(Hit(rule, start, end, value))
    return hits


def mask(value: str) -> str:
    """An excerpt safe to show and log: a few leading characters, never the secret."""
    shown = 4 if len(value) >= 16 else 2 if len(value) >= 8 else 0
    return value[:shown] + "*" * min(len(value) - shown, 12) + f" ({len(value)} chars)"
