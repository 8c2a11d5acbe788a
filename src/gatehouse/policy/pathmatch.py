"""Compiled path rules: which rule of a repository a path matches, fast and remembered.

Pure.  `PathRules` is built once per rule set (`PathRulesCache` keeps one per
policy version and repository) and answers `match(path)` for paths relative to
the checkout, `match_anywhere` for paths outside it.  policy/paths.py uses it
to rewrite tool results.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gatehouse.policy.document import PathRule
from gatehouse.policy.globs import glob_regex
from gatehouse.policy.shell import bash_paths

_WILD = frozenset("*?[")
CACHE_LIMIT = 65_536


@dataclass(frozen=True, slots=True)
class PathRuleHit:
    """One tool result a rule matched: which rule, which path, what was done."""

    rule: str
    glob: str
    action: str
    path: str
    tool: str
    tool_use_id: str
    new: bool  # in the newest turn (sent for the first time)


_Rewrite = tuple[Any, tuple[PathRuleHit, ...], PathRuleHit | None]


class PathRules:
    """One repository's path rules, compiled: bucketed by a literal each glob requires.

    A glob is only tried on a path having a segment equal to one of its literal
    segments (``secrets`` of ``secrets/**``), or starting or ending like one of its
    segments (``.pem`` of ``**/*.pem``); globs with no such literal are always
    tried; each glob's regex is compiled the first time it is tried.  Verdicts
    are cached per path and listings' rewrites per result, so a history resent
    every turn costs dict lookups.
    """

    def __init__(self, rules: Iterable[PathRule]) -> None:
        self.rules = tuple(rules)
        self._regexes: list[re.Pattern[str] | None] = [None] * len(self.rules)
        self._literal: dict[str, list[int]] = {}
        self._prefix: dict[tuple[int, str], list[int]] = {}
        self._suffix: dict[tuple[int, str], list[int]] = {}
        self._always: list[int] = []
        for index, rule in enumerate(self.rules):
            self._bucket(index, rule.glob)
        self._cache: dict[str, int] = {}
        # (root, cwd, tool, tool_use_id, content digest) → (new content, hits, blocked)
        self.rewrites: dict[tuple[Any, ...], _Rewrite] = {}
        self._commands: dict[str, tuple[list[str], bool]] = {}

    def __bool__(self) -> bool:
        return bool(self.rules)

    def _bucket(self, index: int, glob: str) -> None:
        segments = [s.lower() for s in glob.strip().strip("/").split("/") if s and s != "**"]
        for seg in segments:
            if not _WILD.intersection(seg):
                self._literal.setdefault(seg, []).append(index)
                return
        for seg in segments:
            head = seg[: min(i for i, c in enumerate(seg) if c in _WILD)]
            if len(head) >= 2:
                key = head[:4]
                self._prefix.setdefault((len(key), key), []).append(index)
                return
        for seg in segments:
            tail = seg[max(i for i, c in enumerate(seg) if c in _WILD or c == "]") + 1 :]
            if len(tail) >= 2:
                key = tail[-4:]
                self._suffix.setdefault((len(key), key), []).append(index)
                return
        self._always.append(index)

    def match(self, path: str) -> PathRule | None:
        """The rule for a repository-relative ``path``: a ``block`` first, else the first rule."""
        found = self._cache.get(path)
        if found is None:
            found = self._search(path)
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[path] = found
        return self.rules[found] if found >= 0 else None

    def match_anywhere(self, path: str) -> PathRule | None:
        """For a path outside the checkout: the rule matching any of its tails."""
        key = "\0" + path
        found = self._cache.get(key)
        if found is None:
            parts = [p for p in path.split("/") if p]
            tails = ("/".join(parts[i:]) for i in range(len(parts)))
            found = min((i for i in map(self._search, tails) if i >= 0), default=-1, key=self._rank)
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            self._cache[key] = found
        return self.rules[found] if found >= 0 else None

    def command_paths(self, command: str) -> tuple[list[str], bool]:
        """`bash_paths`, remembered: tokenising is the costly part of a resent history."""
        found = self._commands.get(command)
        if found is None:
            if len(self._commands) >= CACHE_LIMIT // 16:
                self._commands.clear()
            found = self._commands[command] = bash_paths(command)
        return found

    def _rank(self, index: int) -> tuple[int, int]:
        return (self.rules[index].action != "block", index)

    def _search(self, path: str) -> int:
        candidates = set(self._always)
        for seg in path.lower().split("/"):
            candidates.update(self._literal.get(seg, ()))
            for n in (2, 3, 4):
                if len(seg) >= n:
                    candidates.update(self._prefix.get((n, seg[:n]), ()))
                    candidates.update(self._suffix.get((n, seg[-n:]), ()))
        best = -1
        for index in sorted(candidates, key=self._rank):
            regex = self._regexes[index]
            if regex is None:
                source = "^(?:" + glob_regex(self.rules[index].glob) + ")$"
                regex = self._regexes[index] = re.compile(source, re.IGNORECASE)
            if regex.match(path):
                best = index
                break
        return best


class PathRulesCache:
    """Compiled `PathRules` per rule tuple, so a policy's globs compile once, not per request.

    Keyed by identity: the snapshot hands out the same tuple for every request of
    a repository, and the entry holds the tuple, so its id cannot be reused.
    """

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._compiled: dict[int, tuple[tuple[PathRule, ...], PathRules]] = {}

    def get(self, rules: tuple[PathRule, ...]) -> PathRules:
        entry = self._compiled.get(id(rules))
        if entry is None or entry[0] is not rules:
            if len(self._compiled) >= self.capacity:
                self._compiled.clear()  # a new policy version: the old tuples are gone
            entry = self._compiled[id(rules)] = (rules, PathRules(rules))
        return entry[1]
