"""The policy document: everything security and platform decide, as one frozen value.

One `Policy` holds the repository allow-list (with each repository's data
classification and path rules), who owns classification per repository or
organisation, the vendor-risk model list, the kill switches, the enforcement
mode and what to do with requests naming no repository.  It is versioned as a
whole (store/policy.py); the hot path never reads it directly but a
`PolicySnapshot` built from it (policy/decide.py).

Two serialisations: `to_dict`/`from_dict` (JSON in the database, the admin
API) and `dump_yaml`/`load_yaml` (policy as code, reviewed in git).  A YAML
file is checked node by node so every error names its line
(policy/yamlcheck.py); `from_dict` raises the same `PolicyError` without one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from gatehouse.policy.globs import glob_regex
from gatehouse.policy.guardactions import GuardActions, parse_guard_actions
from gatehouse.policy.repos import looks_like_repository, normalize_repository, repository_key
from gatehouse.policy.yamlcheck import Checked, from_plain, from_yaml
from gatehouse.policy.yamlcheck import PolicyError as PolicyError  # raised by this module

MODES = ("enforce", "observe")
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
PATH_ACTIONS = ("redact", "block")
UNATTRIBUTED = ("deny", "allow")
SCOPE_KINDS = ("global", "team", "repository", "developer")


@dataclass(frozen=True, slots=True)
class PathRule:
    """Inside an allowed repository: files matching ``glob`` are redacted or block the request."""

    glob: str
    action: str = "redact"  # redact | block
    name: str = ""  # shown in the marker that replaces the content; defaults to the glob

    @property
    def label(self) -> str:
        return self.name or self.glob


@dataclass(frozen=True, slots=True)
class RepoRule:
    """One approved repository: its classification, path rules and who approved it, when, why."""

    classification: str = "internal"
    paths: tuple[PathRule, ...] = ()
    approved_by: str = ""
    approved_at: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Proposal:
    """A model platform proposed for the approved list; only security can approve it."""

    model: str
    proposed_by: str = ""
    proposed_at: float = 0.0
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ModelList:
    """Security's vendor-risk veto: approved model globs, and proposals awaiting approval.

    An empty ``approved`` list vetoes nothing by itself; ``GATEHOUSE_APPROVED_MODELS``
    is a second veto applied on top (see policy/decide.py).
    """

    approved: tuple[str, ...] = ()
    proposed: tuple[Proposal, ...] = ()


@dataclass(frozen=True, slots=True)
class KillSwitch:
    """An incident stop: ``global``, ``team:NAME``, ``repository:NAME`` or ``developer:EMAIL``."""

    scope: str
    reason: str
    show_reason: bool = False  # the developer sees ``reason`` only when security chose so
    thrown_by: str = ""
    on_behalf_of: str | None = None  # platform throwing it on security's instruction
    at: float = 0.0

    @property
    def kind(self) -> str:
        return self.scope.partition(":")[0]

    @property
    def target(self) -> str:
        return self.scope.partition(":")[2]


@dataclass(frozen=True, slots=True)
class Policy:
    """The whole policy, one version of it.  ``Policy()`` is the default: enforce, deny all."""

    mode: str = "enforce"
    observe_teams: frozenset[str] = frozenset()
    repositories: Mapping[str, RepoRule] = field(default_factory=dict)
    owners: Mapping[str, str] = field(default_factory=dict)  # repo or org prefix → IdP group
    models: ModelList = ModelList()
    killswitches: tuple[KillSwitch, ...] = ()
    unattributed: str = "deny"
    contact: str = ""  # who developers should contact about a refusal (security's address)
    guardrails: GuardActions = GuardActions()  # what each detector's findings do

    def owner_of(self, repository: str) -> str | None:
        """The IdP group owning ``repository``'s classification: the longest matching prefix."""
        key = repository_key(repository)
        best: tuple[int, str] | None = None
        for prefix, group in self.owners.items():
            p = repository_key(prefix)
            if (key == p or key.startswith(p + "/")) and (best is None or len(p) > best[0]):
                best = (len(p), group)
        return best[1] if best else None

    def rule_for(self, repository: str) -> RepoRule | None:
        """The approved rule for ``repository`` (any spelling of its name), or ``None``."""
        key = repository_key(repository)
        for name, rule in self.repositories.items():
            if repository_key(name) == key:
                return rule
        return None

    def killswitch(self, scope: str) -> KillSwitch | None:
        scope = normalize_scope(scope)
        return next((k for k in self.killswitches if k.scope == scope), None)

    def replace(self, **changes: Any) -> Policy:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "observe_teams": sorted(self.observe_teams),
            "unattributed": self.unattributed,
            "contact": self.contact,
            "owners": dict(sorted(self.owners.items())),
            "repositories": {
                name: {
                    "classification": rule.classification,
                    "approved_by": rule.approved_by,
                    "approved_at": rule.approved_at,
                    "reason": rule.reason,
                    "paths": [
                        {"glob": p.glob, "action": p.action, "name": p.name} for p in rule.paths
                    ],
                }
                for name, rule in sorted(self.repositories.items())
            },
            "models": {
                "approved": list(self.models.approved),
                "proposed": [dataclasses.asdict(p) for p in self.models.proposed],
            },
            "killswitches": [dataclasses.asdict(k) for k in self.killswitches],
            "guardrails": self.guardrails.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Policy:
        """The inverse of `to_dict`; validates everything, raising `PolicyError`."""
        return _build(from_plain(data, "policy"))


def normalize_scope(scope: str) -> str:
    """``team:Payments`` stays as typed except the kind; repositories and emails are normalised."""
    kind, sep, target = scope.strip().partition(":")
    kind = kind.lower()
    if kind == "global":
        if target:
            raise PolicyError("the global scope takes no name: use `global`")
        return "global"
    if kind not in SCOPE_KINDS or not sep or not target.strip():
        raise PolicyError(
            f"unknown kill-switch scope {scope!r}: use global, team:NAME, "
            "repository:HOST/OWNER/NAME or developer:EMAIL"
        )
    target = target.strip()
    if kind == "repository":
        target = repository_key(target)
        if not looks_like_repository(target):
            raise PolicyError(f"{target!r} is not a repository: name it host/owner/name")
    elif kind == "developer":
        if "@" not in target:
            raise PolicyError(f"a developer is named by email address, not {target!r}")
        target = target.lower()
    return f"{kind}:{target}"


def check_repository_name(name: str) -> str:
    """The normalised ``host/owner/name``; `PolicyError` if it is not one."""
    normal = normalize_repository(name)
    if not looks_like_repository(normal):
        raise PolicyError(
            f"{name!r} is not a repository name: use host/owner/name, "
            "for example github.com/acme/payments"
        )
    return normal


def check_glob(glob: str) -> None:
    try:
        glob_regex(glob)
    except ValueError as exc:
        raise PolicyError(str(exc)) from None


# -- YAML ---------------------------------------------------------------------


def dump_yaml(policy: Policy) -> str:
    """The policy as a reviewable YAML document (times in ISO 8601 UTC)."""
    data = policy.to_dict()
    for rule in data["repositories"].values():
        rule["approved_at"] = iso(rule["approved_at"])
        if not rule["paths"]:
            del rule["paths"]
    for proposal in data["models"]["proposed"]:
        proposal["proposed_at"] = iso(proposal["proposed_at"])
    for switch in data["killswitches"]:
        switch["at"] = iso(switch["at"])
        if switch["on_behalf_of"] is None:
            del switch["on_behalf_of"]
    if not any(data["guardrails"].values()):
        del data["guardrails"]
    header = (
        "# Gatehouse policy: `gatehouse policy diff FILE` to review, "
        "`gatehouse policy apply FILE` to apply.\n"
    )
    body = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + body


class _Dumper(yaml.SafeDumper):
    """Readable Unicode, but any text YAML would fold or mangle is double-quoted (escaped)."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML writes NEL and the Unicode line separators raw in plain scalars, and
    # reads them back as line breaks: such text must be quoted to round-trip.
    if not value.isprintable() or any(c in value for c in "\x85\u2028\u2029"):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style='"')
    return dumper.represent_str(value)


_Dumper.add_representer(str, _text)


def load_yaml(text: str, source: str = "policy.yaml") -> Policy:
    """Parse and check a policy file; `PolicyError` naming ``source:line`` on any mistake."""
    return _build(from_yaml(text, source))


def iso(ts: float) -> str:
    if not ts:
        return ""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_TOP = (
    "mode",
    "observe_teams",
    "unattributed",
    "contact",
    "owners",
    "repositories",
    "models",
    "killswitches",
    "guardrails",
)


def _build(root: Checked) -> Policy:
    top = root.mapping(_TOP, "the policy")
    get = top.get
    none = Checked(None, root.where)
    repositories: dict[str, RepoRule] = {}
    seen: dict[str, str] = {}
    for name, item in (get("repositories") or none).mapping(what="repositories").items():
        where = getattr(item, "key_where", item.where)
        try:
            normal = check_repository_name(name)
        except PolicyError as exc:
            raise PolicyError(f"{where}: {exc.message}") from None
        key = repository_key(normal)
        if key in seen:
            raise PolicyError(f"{where}: {name!r} is the same repository as {seen[key]!r}")
        seen[key] = name
        repositories[normal] = _repo_rule(item, normal)
    owners: dict[str, str] = {}
    for prefix, item in (get("owners") or none).mapping(what="owners").items():
        owners[normalize_repository(prefix)] = item.text(
            f"the owner group of {prefix}", required=True
        )
    models = (get("models") or none).mapping(("approved", "proposed"), "models")
    approved = []
    for item in (models.get("approved") or none).items("models.approved"):
        approved.append(item.text("an approved model glob", required=True))
    proposed = []
    for item in (models.get("proposed") or none).items("models.proposed"):
        fields = item.mapping(("model", "proposed_by", "proposed_at", "reason"), "a proposal")
        proposed.append(
            Proposal(
                model=_req(item, fields, "model", "the proposed model"),
                proposed_by=_opt(fields, "proposed_by", "proposed_by"),
                proposed_at=(fields.get("proposed_at") or none).time("proposed_at"),
                reason=_opt(fields, "reason", "reason"),
            )
        )
    switches: list[KillSwitch] = []
    scopes: set[str] = set()
    for item in (get("killswitches") or none).items("killswitches"):
        switch = _killswitch(item)
        if switch.scope in scopes:
            raise item.error(f"a second kill switch for {switch.scope}")
        scopes.add(switch.scope)
        switches.append(switch)
    return Policy(
        mode=(get("mode") or Checked("enforce", root.where)).text("mode", choices=MODES),
        observe_teams=frozenset(
            t.text("an observed team", required=True)
            for t in (get("observe_teams") or none).items("observe_teams")
        ),
        repositories=repositories,
        owners=owners,
        models=ModelList(tuple(approved), tuple(proposed)),
        killswitches=tuple(switches),
        unattributed=(get("unattributed") or Checked("deny", root.where)).text(
            "unattributed", choices=UNATTRIBUTED
        ),
        contact=(get("contact") or none).text("contact"),
        guardrails=parse_guard_actions(get("guardrails") or none),
    )


def _req(item: Checked, fields: dict[str, Checked], key: str, what: str) -> str:
    if key not in fields:
        raise item.error(f"{what} is missing (`{key}:`)")
    return fields[key].text(what, required=True)


def _opt(fields: dict[str, Checked], key: str, what: str) -> str:
    return fields[key].text(what) if key in fields else ""


def _repo_rule(item: Checked, name: str) -> RepoRule:
    keys = ("classification", "paths", "approved_by", "approved_at", "reason")
    fields = item.mapping(keys, f"repository {name}")
    paths = []
    for entry in fields["paths"].items(f"{name} paths") if "paths" in fields else []:
        rule = entry.mapping(("glob", "action", "name"), "a path rule")
        glob = _req(entry, rule, "glob", "the path glob")
        try:
            check_glob(glob)
        except PolicyError as exc:
            raise rule["glob"].error(exc.message) from None
        action = (rule.get("action") or Checked("redact", entry.where)).text(
            "the path action", choices=PATH_ACTIONS
        )
        paths.append(PathRule(glob, action, _opt(rule, "name", "the rule name")))
    classification = fields.get("classification") or Checked(None, item.where)
    return RepoRule(
        classification=classification.text(
            f"the classification of {name}", choices=CLASSIFICATIONS, required=True
        ),
        paths=tuple(paths),
        approved_by=_opt(fields, "approved_by", "approved_by"),
        approved_at=fields["approved_at"].time("approved_at") if "approved_at" in fields else 0.0,
        reason=_opt(fields, "reason", "reason"),
    )


def _killswitch(item: Checked) -> KillSwitch:
    keys = ("scope", "reason", "show_reason", "thrown_by", "on_behalf_of", "at")
    fields = item.mapping(keys, "a kill switch")
    scope_text = _req(item, fields, "scope", "the kill-switch scope")
    try:
        scope = normalize_scope(scope_text)
    except PolicyError as exc:
        raise fields["scope"].error(exc.message) from None
    behalf = _opt(fields, "on_behalf_of", "on_behalf_of")
    return KillSwitch(
        scope=scope,
        reason=_req(item, fields, "reason", "the kill-switch reason"),
        show_reason=fields["show_reason"].flag("show_reason") if "show_reason" in fields else False,
        thrown_by=_opt(fields, "thrown_by", "thrown_by"),
        on_behalf_of=behalf or None,
        at=fields["at"].time("at") if "at" in fields else 0.0,
    )


# -- diff -----------------------------------------------------------------------


def diff(a: Policy, b: Policy) -> list[str]:
    """What changes from ``a`` to ``b``, one human-readable line per change."""
    lines: list[str] = []
    if a.mode != b.mode:
        lines.append(f"mode: {a.mode} → {b.mode}")
    for team in sorted(b.observe_teams - a.observe_teams):
        lines.append(f"+ observe team {team}")
    for team in sorted(a.observe_teams - b.observe_teams):
        lines.append(f"- observe team {team}")
    if a.unattributed != b.unattributed:
        lines.append(f"unattributed requests: {a.unattributed} → {b.unattributed}")
    if a.contact != b.contact:
        lines.append(f"contact: {a.contact or '(none)'} → {b.contact or '(none)'}")
    _diff_mapping(lines, "owner", dict(a.owners), dict(b.owners))
    for name in sorted(set(a.repositories) | set(b.repositories)):
        old, new = a.repositories.get(name), b.repositories.get(name)
        if old == new:
            continue
        if old is None and new is not None:
            lines.append(f"+ repository {name} ({new.classification}, {_paths(new)})")
        elif new is None and old is not None:
            lines.append(f"- repository {name}")
        elif old is not None and new is not None:
            if old.classification != new.classification:
                lines.append(
                    f"~ repository {name}: classification {old.classification} → "
                    f"{new.classification}"
                )
            for rule in new.paths:
                if rule not in old.paths:
                    lines.append(f"~ repository {name}: + path {rule.glob} ({rule.action})")
            for rule in old.paths:
                if rule not in new.paths:
                    lines.append(f"~ repository {name}: - path {rule.glob} ({rule.action})")
            if (old.approved_by, old.approved_at, old.reason) != (
                new.approved_by,
                new.approved_at,
                new.reason,
            ):
                lines.append(f"~ repository {name}: approval by {new.approved_by or '?'}")
    for glob in b.models.approved:
        if glob not in a.models.approved:
            lines.append(f"+ approved model {glob}")
    for glob in a.models.approved:
        if glob not in b.models.approved:
            lines.append(f"- approved model {glob}")
    for p in b.models.proposed:
        if p not in a.models.proposed:
            lines.append(f"+ proposed model {p.model} by {p.proposed_by or '?'}")
    for p in a.models.proposed:
        if p not in b.models.proposed:
            lines.append(f"- proposed model {p.model}")
    old_switches = {k.scope: k for k in a.killswitches}
    new_switches = {k.scope: k for k in b.killswitches}
    for scope, k in new_switches.items():
        if old_switches.get(scope) != k:
            lines.append(f"+ kill switch {scope}: {k.reason}")
    for scope in old_switches:
        if scope not in new_switches:
            lines.append(f"- kill switch {scope}")
    old_guard, new_guard = a.guardrails.describe(), b.guardrails.describe()
    lines += [f"- {line}" for line in old_guard if line not in new_guard]
    lines += [f"+ {line}" for line in new_guard if line not in old_guard]
    return lines


def _paths(rule: RepoRule) -> str:
    n = len(rule.paths)
    return "no path rules" if n == 0 else f"{n} path rule{'s' if n > 1 else ''}"


def _diff_mapping(lines: list[str], what: str, a: dict[str, str], b: dict[str, str]) -> None:
    for key in sorted(set(a) | set(b)):
        if key not in a:
            lines.append(f"+ {what} {key}: {b[key]}")
        elif key not in b:
            lines.append(f"- {what} {key}")
        elif a[key] != b[key]:
            lines.append(f"~ {what} {key}: {a[key]} → {b[key]}")
