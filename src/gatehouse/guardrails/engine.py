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

import contextlib
import ctypes
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ahocorasick
import orjson
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


_Expressions = tuple[list[str], list[int], list[int]]  # patterns, ids, flags


@dataclass(slots=True)
class _Compiled:
    rule: Rule
    regex: Any  # re2 pattern
    allow: tuple[Any, ...]


class Scanner:
    """Compiled once per rule set; `scan` is safe to call from any thread."""

    def __init__(self, ruleset: RuleSet, *, cache_dir: Path | None = None) -> None:
        self.ruleset = ruleset
        self._cache_dir = cache_dir
        self._rules = [_compile(rule, ruleset.allow) for rule in ruleset.rules]
        self._always: list[int] = []  # rules the prefilter cannot express: always candidates
        by_keyword: dict[str, list[int]] = {}
        for index, rule in enumerate(ruleset.rules):
            for keyword in rule.keywords:
                by_keyword.setdefault(keyword, []).append(index)
        self._keywords = list(by_keyword)
        self._keyword_rules = [tuple(by_keyword[k]) for k in self._keywords]
        self._database = self._prefilter() if hyperscan is not None else None
        self._automaton = _automaton(by_keyword) if self._database is None else None

    @property
    def prefiltered(self) -> bool:
        return self._database is not None

    def scan(self, text: str, origin: str = "user") -> list[Hit]:
        """Every finding in ``text`` of the rules that read blocks of ``origin``."""
        if not text:
            return []
        candidates, present = self._candidates(text)
        hits: list[Hit] = []
        for index in sorted(candidates):
            compiled = self._rules[index]
            rule = compiled.rule
            if origin not in rule.where or (rule.keywords and index not in present):
                continue
            hits.extend(_confirm(compiled, text))
        return hits

    def _candidates(self, text: str) -> tuple[set[int], set[int]]:
        """(rules that may match, rules one of whose keywords appears)."""
        present: set[int] = set()
        if self._database is None:
            if self._automaton is not None:
                for _, keyword in self._automaton.iter(text.lower()):
                    present.update(self._keyword_rules[keyword])
            return set(range(len(self._rules))), present
        found: set[int] = set(self._always)
        count = len(self._rules)
        keyword_rules = self._keyword_rules

        def on_match(match_id: int, start: int, end: int, flags: int, context: Any) -> None:
            if match_id < count:
                found.add(match_id)
            else:
                present.update(keyword_rules[match_id - count])

        self._database.scan(text.encode("utf-8", "surrogatepass"), match_event_handler=on_match)
        return found, present

    def _prefilter(self) -> Any:
        """One database: each rule's pattern (prefilter mode), then each keyword (a literal)."""
        flags = [_flags(c.rule) for c in self._rules]
        try:
            return self._cached(list(range(len(flags))), flags)
        except hyperscan.error:
            pass
        # Some pattern is beyond Hyperscan: find which, confirm those without the prefilter.
        for index, compiled in enumerate(self._rules):
            try:
                _database([compiled.rule.pattern], [0], [flags[index]])
            except hyperscan.error:
                log.info("guardrail rule %s is confirmed without the prefilter", compiled.rule.id)
                self._always.append(index)
        ids = [i for i in range(len(flags)) if i not in self._always]
        return self._database_of(ids, flags)

    def _database_of(self, ids: list[int], flags: list[int]) -> Any:
        return _database(*self._expressions(ids, flags))

    def _expressions(
        self, ids: list[int], flags: list[int]
    ) -> tuple[list[str], list[int], list[int]]:
        count = len(self._rules)
        literal = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH
        literal |= hyperscan.HS_FLAG_UTF8
        return (
            [self._rules[i].rule.pattern for i in ids] + [re.escape(k) for k in self._keywords],
            ids + [count + k for k in range(len(self._keywords))],
            [flags[i] for i in ids] + [literal] * len(self._keywords),
        )

    def _cached(self, ids: list[int], flags: list[int]) -> Any:
        """The database of every rule, from ``cache_dir`` when this rule set was compiled before.

        The cache file is named by a digest of every expression, id and flag and of
        the Hyperscan version, so a changed rule, or another Hyperscan, compiles anew.
        """
        expressions = self._expressions(ids, flags)
        if self._cache_dir is None:
            return _database(*expressions)
        key = hashlib.sha256(orjson.dumps([hyperscan.__version__, *expressions])).hexdigest()
        path = self._cache_dir / f"guardrails-{key[:32]}.hs"
        with contextlib.suppress(OSError, hyperscan.error):
            loaded = hyperscan.loadb(path.read_bytes(), hyperscan.HS_MODE_BLOCK)
            loaded.scratch = hyperscan.Scratch(loaded)  # a loaded database has none
            return loaded
        database = _database(*expressions)
        _trim()
        with contextlib.suppress(OSError):
            self._cache_dir.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(f".{os.getpid()}.tmp")
            partial.write_bytes(hyperscan.dumpb(database))
            partial.replace(path)
        return database


def _trim() -> None:
    """Give back what compiling used (about 30 MB the allocator would otherwise keep)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _flags(rule: Rule) -> int:
    flag: int = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH
    flag |= hyperscan.HS_FLAG_UTF8 | hyperscan.HS_FLAG_ALLOWEMPTY
    return flag | (hyperscan.HS_FLAG_CASELESS if rule.ignore_case else 0)


def _database(patterns: list[str], ids: list[int], flags: list[int]) -> Any:
    database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    database.compile(
        expressions=[loosen(p).encode() for p in patterns],
        ids=ids,
        elements=len(ids),
        flags=flags,
    )
    return database


_BOUNDED = re.compile(r"(?<!\\)\{(\d+),(\d+)\}")


def loosen(pattern: str) -> str:
    """``pattern`` with wide bounded repeats made open (``{0,300}`` → ``{0,}``).

    Hyperscan's compile time explodes on wide bounded repeats of character
    classes in UTF-8 mode; an open repeat matches a superset, which is all a
    prefilter needs (RE2 still confirms the exact pattern).
    """
    return _BOUNDED.sub(
        lambda m: m.group(0) if int(m.group(2)) <= 16 else f"{{{m.group(1)},}}", pattern
    )


_COMPILED: dict[RuleSet, Scanner] = {}


def compiled_scanner(ruleset: RuleSet, cache_dir: Path | None = None) -> Scanner:
    """One compiled `Scanner` per rule set in this process (compiling takes a while).

    ``cache_dir`` is where a compiled database is looked for first and kept; a rule
    set this process compiled already is reused whatever ``cache_dir`` says.
    """
    scanner = _COMPILED.get(ruleset)
    if scanner is None:
        if len(_COMPILED) >= 8:
            _COMPILED.clear()
        scanner = _COMPILED[ruleset] = Scanner(ruleset, cache_dir=cache_dir)
    return scanner


def _compile(rule: Rule, allow: Sequence[str]) -> _Compiled:
    options = re2.Options()
    options.case_sensitive = not rule.ignore_case
    patterns = [re2.compile(p) for p in (*rule.allow, *allow)]
    return _Compiled(rule, re2.compile(rule.pattern, options), tuple(patterns))


def _automaton(by_keyword: dict[str, list[int]]) -> Any:
    """Keyword → its index, for the fallback without Hyperscan."""
    if not by_keyword:
        return None
    automaton = ahocorasick.Automaton()
    for index, keyword in enumerate(by_keyword):
        automaton.add_word(keyword, index)
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
