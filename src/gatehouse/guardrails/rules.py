"""Guardrail rules as data: the built-in packs plus the operator's YAML file.

A rule file is a mapping with any of these keys::

    rules:                      # full rules
      - id: acme-deploy-token   # unique, lower-case words joined by "-"
        detector: secrets       # secrets | pii | markers | injection
        pattern: 'acme_[a-z0-9]{32}'   # RE2 syntax (no look-around, no back-references)
        description: ACME deploy token
        keywords: [acme_]       # optional: tried only where one appears (any case)
        group: 1                # optional: the capture group that is the finding (default 0)
        ignore_case: false
        validator: luhn         # optional: a name from guardrails/validators.py
        entropy: 3.5            # optional: minimum Shannon entropy (bits/char) of the finding
        allow: ['EXAMPLE$']     # optional: findings matching any of these are dropped
        stopwords: [example]    # optional: findings containing any of these are dropped
        where: [tool_result]    # optional: which blocks it reads (default: all)
    markers:                    # shorthand: classification markers, matched as whole words
      - CONFIDENTIAL
      - text: project nightingale
        ignore_case: true
    allow: ['AKIAIOSFODNN7EXAMPLE']   # dropped whatever rule found them
    disable: [generic-password]       # built-in rules switched off

Every problem is reported with its file and line (`RulesError`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import re2

from gatehouse.guardrails.validators import VALIDATORS
from gatehouse.policy.yamlcheck import Checked, PolicyError, from_yaml

DETECTORS = ("secrets", "pii", "markers", "injection")
# Where a block sits; `where` narrows a rule to some of these.
ORIGINS = ("system", "tools", "user", "assistant", "tool_use", "tool_result", "response")
PACKS = ("secrets", "pii", "markers", "injection")
_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
_RULE_KEYS = (
    "id",
    "detector",
    "pattern",
    "description",
    "keywords",
    "group",
    "ignore_case",
    "validator",
    "entropy",
    "allow",
    "stopwords",
    "where",
)


class RulesError(PolicyError):
    """A rule file that cannot be used; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    detector: str
    pattern: str
    description: str = ""
    keywords: tuple[str, ...] = ()  # lower-case
    group: int | str = 0
    ignore_case: bool = False
    validator: str = ""
    entropy: float = 0.0
    allow: tuple[str, ...] = ()
    stopwords: tuple[str, ...] = ()  # lower-case
    where: frozenset[str] = frozenset(ORIGINS)
    source: str = field(default="built-in", compare=False)  # the file (and line) it came from

    @property
    def placeholder(self) -> str:
        """What replaces a redacted finding: typed, and the same every time."""
        return f"[REDACTED:{self.id}]"


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    allow: tuple[str, ...] = ()  # global allow-list patterns

    def by_detector(self, detector: str) -> list[Rule]:
        return [r for r in self.rules if r.detector == detector]


def load_rules(operator_file: str | Path | None = None) -> RuleSet:
    """The built-in packs, then the operator's file (its rules, markers, allow-list, disables)."""
    rules: list[Rule] = []
    allow: list[str] = []
    for pack in PACKS:
        text = resources.files("gatehouse.guardrails.packs").joinpath(f"{pack}.yaml").read_text()
        pack_rules, pack_allow, _ = parse(text, f"{pack}.yaml (built-in)", built_in=True)
        rules += pack_rules
        allow += pack_allow
    if operator_file:
        path = Path(operator_file)
        try:
            text = path.read_text()
        except OSError as exc:
            raise RulesError(f"cannot read guardrail rules {path}: {exc.strerror}") from None
        own, own_allow, disabled = parse(text, str(path))
        known = {r.id for r in rules}
        for rule_id in disabled:
            if rule_id not in known:
                raise RulesError(f"{path}: disable names {rule_id!r}, which is not a built-in rule")
        rules = [r for r in rules if r.id not in disabled]
        taken = {r.id: r.source for r in rules}
        for rule in own:
            if rule.id in taken:
                raise RulesError(
                    f"{rule.source}: rule id {rule.id!r} is already used by {taken[rule.id]}; "
                    "choose another id, or disable the built-in rule first"
                )
            taken[rule.id] = rule.source
        rules += own
        allow += own_allow
    return RuleSet(tuple(rules), tuple(allow))


def parse(
    text: str, source: str, *, built_in: bool = False
) -> tuple[list[Rule], list[str], set[str]]:
    """(rules, allow-list, disabled ids) of one rule file."""
    try:
        root = from_yaml(text, source)
        fields = root.mapping(("rules", "markers", "allow", "disable"), "a guardrail rule file")
        rules: list[Rule] = []
        seen: dict[str, str] = {}
        for item in fields["rules"].items("rules") if "rules" in fields else []:
            rule = _rule(item, "built-in" if built_in else item.where)
            if rule.id in seen:
                raise item.error(f"duplicate rule id {rule.id!r} (first at {seen[rule.id]})")
            seen[rule.id] = item.where
            rules.append(rule)
        for item in fields["markers"].items("markers") if "markers" in fields else []:
            rule = _marker(item)
            if rule.id in seen:
                raise item.error(f"marker {rule.id!r} is listed twice")
            seen[rule.id] = item.where
            rules.append(rule)
        allow = _patterns(fields["allow"], "allow") if "allow" in fields else []
        disabled = set(_words(fields["disable"], "disable")) if "disable" in fields else set()
    except RulesError:
        raise
    except PolicyError as exc:
        raise RulesError(exc.message) from None
    return rules, allow, disabled


def _rule(item: Checked, source: str) -> Rule:
    fields = item.mapping(_RULE_KEYS, "a rule")
    for key in ("id", "detector", "pattern"):
        if key not in fields:
            raise item.error(f"a rule needs `{key}`")
    rule_id = fields["id"].text("id", required=True)
    if not _ID.match(rule_id):
        raise fields["id"].error(f"rule id {rule_id!r} must be lower-case words joined by '-'")
    detector = fields["detector"].text("detector", choices=DETECTORS)
    pattern = fields["pattern"].text("pattern", required=True)
    ignore_case = fields["ignore_case"].flag("ignore_case") if "ignore_case" in fields else False
    compiled = _compile(fields["pattern"], pattern, ignore_case)
    group: int | str = 0
    if "group" in fields:
        value = fields["group"].value
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise fields["group"].error("group must be a capture group's number or name")
        if isinstance(value, int) and not 0 <= value <= compiled.groups:
            raise fields["group"].error(
                f"group {value} does not exist: the pattern has {compiled.groups} group(s)"
            )
        if isinstance(value, str) and value not in compiled.groupindex:
            raise fields["group"].error(f"the pattern has no group named {value!r}")
        group = value
    validator = fields["validator"].text("validator") if "validator" in fields else ""
    if validator and validator not in VALIDATORS:
        raise fields["validator"].error(
            f"unknown validator {validator!r}; known: {', '.join(sorted(VALIDATORS))}"
        )
    entropy = 0.0
    if "entropy" in fields:
        value = fields["entropy"].value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise fields["entropy"].error("entropy must be a number of bits per character")
        entropy = float(value)
    where = frozenset(ORIGINS)
    if "where" in fields:
        where = frozenset(_words(fields["where"], "where", choices=ORIGINS))
    return Rule(
        id=rule_id,
        detector=detector,
        pattern=pattern,
        description=fields["description"].text("description") if "description" in fields else "",
        keywords=tuple(w.lower() for w in _words(fields.get("keywords"), "keywords")),
        group=group,
        ignore_case=ignore_case,
        validator=validator,
        entropy=entropy,
        allow=tuple(_patterns(fields["allow"], "allow")) if "allow" in fields else (),
        stopwords=tuple(w.lower() for w in _words(fields.get("stopwords"), "stopwords")),
        where=where,
        source=source,
    )


def _marker(item: Checked) -> Rule:
    """A classification marker: literal text, matched as whole words."""
    if isinstance(item.value, dict):
        fields = item.mapping(("text", "id", "ignore_case", "description"), "a marker")
        text = fields["text"].text("text", required=True) if "text" in fields else ""
        if not text:
            raise item.error("a marker needs `text`")
        ignore_case = (
            fields["ignore_case"].flag("ignore_case") if "ignore_case" in fields else False
        )
        rule_id = fields["id"].text("id") if "id" in fields else ""
        description = fields["description"].text("description") if "description" in fields else ""
    else:
        text = item.text("a marker", required=True)
        ignore_case, rule_id, description = False, "", ""
    rule_id = rule_id or "marker-" + re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    edge_start = r"\b" if text[0].isalnum() else ""
    edge_end = r"\b" if text[-1].isalnum() else ""
    pattern = edge_start + re2.escape(text) + edge_end
    return Rule(
        id=rule_id,
        detector="markers",
        pattern=pattern,
        description=description or f"classification marker {text!r}",
        ignore_case=ignore_case,
        source=item.where,
    )


def _compile(item: Checked, pattern: str, ignore_case: bool) -> Any:
    options = re2.Options()
    options.case_sensitive = not ignore_case
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raise item.error(f"pattern is not valid RE2 syntax ({exc}): {pattern!r}") from None


def _words(item: Checked | None, what: str, *, choices: Sequence[str] = ()) -> list[str]:
    if item is None:
        return []
    values = [item] if isinstance(item.value, str) else item.items(what)
    return [v.text(what, choices=tuple(choices), required=True) for v in values]


def _patterns(item: Checked, what: str) -> list[str]:
    out = []
    for value in _words(item, what):
        _compile(item, value, False)
        out.append(value)
    return out


def describe(rules: Iterable[Rule]) -> list[dict[str, object]]:
    """What `gatehouse guard rules` shows."""
    return [
        {
            "id": r.id,
            "detector": r.detector,
            "description": r.description,
            "keywords": list(r.keywords),
            "validator": r.validator,
            "where": sorted(r.where) if r.where != frozenset(ORIGINS) else ["all"],
            "source": r.source,
        }
        for r in rules
    ]
