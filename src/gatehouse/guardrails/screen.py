"""Screening a request: scan only new blocks, apply each detector's action.

Pure and synchronous (the scan is CPU work measured in microseconds per new
block).  A `Screener` is built once per rule set and keeps a verdict cache
keyed by each block's address (`gatehouse.content`), so a Claude Code turn —
which resends the whole conversation — scans only the blocks this process has
not seen.  The cache holds what was *found*; what is *done* (block, redact,
flag, off) is decided per request from the policy's actions for its team and
repository, so one cache serves every team.

A redacted block is rewritten from its findings alone: the same block is
rewritten the same way every turn, so the bytes upstream stay identical and
Claude Code's prompt cache stays valid.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gatehouse.content import Block, Where, block_texts, replace_texts, where_label
from gatehouse.guardrails.engine import Scanner, compiled_scanner, mask
from gatehouse.guardrails.rules import RulesError, load_rules

CACHE_BLOCKS = 100_000
_SEVERITY = {"off": 0, "flag": 1, "redact": 2, "block": 3}
INJECTION_RULE = "semantic-classifier"


class Classifier(Protocol):
    def is_injection(self, text: str) -> bool:
        """At or above the threshold the classifier was calibrated for."""


@dataclass(frozen=True, slots=True)
class Found:
    """One finding inside a block (cached by the block's address)."""

    detector: str
    rule: str
    where: Where
    start: int
    end: int
    excerpt: str


@dataclass(frozen=True, slots=True)
class Finding:
    """A finding in a request, with what was done about it."""

    detector: str
    rule: str
    action: str
    block: str  # the block's path and the text's place in it
    start: int
    end: int
    excerpt: str  # masked: never the value
    new: bool  # first seen in this request (not a resent block)

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "rule": self.rule,
            "action": self.action,
            "block": self.block,
            "start": self.start,
            "end": self.end,
            "excerpt": self.excerpt,
        }


@dataclass(slots=True)
class Screening:
    verdict: str = "clean"  # clean | flagged | redacted | blocked
    findings: list[Finding] = field(default_factory=list)
    blocked: Finding | None = None
    rewrites: dict[int, Any] = field(default_factory=dict)  # block index → new block value
    # What the audit trail keeps: the forwarded value, and never a secret whatever the action.
    kept: dict[int, Any] = field(default_factory=dict)
    scanned: int = 0  # blocks scanned (not served from the cache)


def origin(block: Block) -> str:
    """Where a block's text comes from, as rules' ``where`` names it."""
    if block.role in ("system", "tools"):
        return block.role
    if block.kind in ("tool_result", "document"):
        return "tool_result"  # untrusted: files, pages, pasted documents
    if block.kind == "tool_use":
        return "tool_use"
    return "assistant" if block.role == "assistant" else "user"


class Screener:
    def __init__(
        self,
        scanner: Scanner,
        *,
        classifier: Classifier | None = None,
        cache_blocks: int = CACHE_BLOCKS,
    ) -> None:
        self.scanner = scanner
        self.classifier = classifier
        self._cache: OrderedDict[str, tuple[Found, ...]] = OrderedDict()
        self._cache_blocks = cache_blocks
        self._placeholders = {r.id: r.placeholder for r in scanner.ruleset.rules}
        self._placeholders[INJECTION_RULE] = f"[REDACTED:{INJECTION_RULE}]"

    def find(self, block: Block) -> tuple[tuple[Found, ...], bool]:
        """The findings in ``block`` and whether they came from the cache."""
        # Rules read some origins only: the same text as a tool result and as a prompt
        # can have different findings.
        key = block.digest + origin(block)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached, True
        found = self._scan(block)
        self._cache[key] = found
        if len(self._cache) > self._cache_blocks:
            self._cache.popitem(last=False)
        return found, False

    def _scan(self, block: Block) -> tuple[Found, ...]:
        where_from = origin(block)
        out: list[Found] = []
        for where, text in block_texts(block):
            for hit in self.scanner.scan(text, where_from):
                out.append(
                    Found(
                        hit.rule.detector, hit.rule.id, where, hit.start, hit.end, mask(hit.value)
                    )
                )
            if (
                self.classifier is not None
                and where_from in ("user", "tool_result")
                and len(text) >= 20
                and not any(f.detector == "injection" and f.where == where for f in out)
                and self.classifier.is_injection(text)
            ):
                out.append(Found("injection", INJECTION_RULE, where, 0, len(text), mask(text)))
        return tuple(out)

    def screen(
        self, blocks: Sequence[Block], actions: Mapping[str, str], *, sent: bool = False
    ) -> Screening:
        """Find, decide and rewrite: the outcome for one request.

        ``sent``: the blocks are a response already relayed, so any action but
        ``off`` can only flag (the audit copy still hides secrets).
        """
        result = Screening()
        for index, block in enumerate(blocks):
            found, cached = self.find(block)
            if not cached:
                result.scanned += 1
            if not found:
                continue
            redact: dict[Where, list[Found]] = {}
            hide: dict[Where, list[Found]] = {}
            for f in found:
                action = actions.get(f.detector, "flag")
                if action == "off":
                    continue
                if sent:
                    action = "flag"
                label = where_label(f.where)
                finding = Finding(
                    f.detector,
                    f.rule,
                    action,
                    f"{block.path}.{label}",
                    f.start,
                    f.end,
                    f.excerpt,
                    not cached,
                )
                result.findings.append(finding)
                if action == "block" and result.blocked is None:
                    result.blocked = finding
                elif action == "redact":
                    redact.setdefault(f.where, []).append(f)
                if action == "redact" or f.detector == "secrets":
                    hide.setdefault(f.where, []).append(f)
            if redact:
                result.rewrites[index] = self._redact(block, redact)
            if hide:
                same = result.rewrites.get(index) if hide == redact else None
                result.kept[index] = same if same is not None else self._redact(block, hide)
        verdict = max((f.action for f in result.findings), key=_SEVERITY.__getitem__, default="")
        result.verdict = {"block": "blocked", "redact": "redacted", "flag": "flagged"}.get(
            verdict, "clean"
        )
        return result

    def _redact(self, block: Block, spans: Mapping[Where, list[Found]]) -> Any:
        texts = dict(block_texts(block))
        replaced: dict[Where, str] = {}
        for where, found in spans.items():
            text = texts[where]
            pieces: list[str] = []
            cursor = 0
            for f in sorted(found, key=lambda f: (f.start, -f.end)):
                if f.start < cursor:  # overlaps the span just replaced: widen it
                    cursor = max(cursor, f.end)
                    continue
                pieces += (text[cursor : f.start], self._placeholders.get(f.rule, "[REDACTED]"))
                cursor = f.end
            pieces.append(text[cursor:])
            replaced[where] = "".join(pieces)
        return replace_texts(block.value, replaced)


def load_screener(
    rules_file: str = "", *, classifier: bool = False, cache_dir: Path | None = None
) -> Screener:
    """The built-in rules plus ``rules_file``; `RulesError` names any mistake in it.

    ``cache_dir`` keeps the compiled rule database between starts.
    """
    semantic: Classifier | None = None
    if classifier:
        from gatehouse.guardrails.classifier import load_classifier  # optional, heavy

        semantic = load_classifier()
        if semantic is None:
            raise RulesError(
                "guard_injection_classifier is on but the classifier cannot load: "
                "install the optional package (pip install 'gatehouse[semantic]')"
            )
    scanner = compiled_scanner(load_rules(rules_file or None), cache_dir)
    return Screener(scanner, classifier=semantic)
