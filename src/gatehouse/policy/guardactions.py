"""What the guardrails do with a finding, per detector: the policy's ``guardrails`` section.

Pure.  Out of the box secrets are redacted, classification markers block,
PII and prompt injection are flagged.  The policy changes any of them for
everyone, per team or per repository (a repository's setting outranks its
team's, which outranks the default)::

    guardrails:
      actions: {pii: redact}
      teams:
        payments: {pii: block}
      repositories:
        github.com/acme/vault: {secrets: block}

``off`` switches a detector off where it applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from gatehouse.policy.repos import normalize_repository, repository_key
from gatehouse.policy.yamlcheck import Checked

DETECTORS = ("secrets", "pii", "markers", "injection")
ACTIONS = ("block", "redact", "flag", "off")
DEFAULT_ACTIONS: Mapping[str, str] = MappingProxyType(
    {"secrets": "redact", "pii": "flag", "markers": "block", "injection": "flag"}
)
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class GuardActions:
    actions: Mapping[str, str] = field(default_factory=lambda: _EMPTY)  # overrides of the default
    teams: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    repositories: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def for_request(self, team: str, repository: str) -> Mapping[str, str]:
        """detector → action for a request of ``team`` about ``repository``."""
        if not self.actions and not self.teams and not self.repositories:
            return DEFAULT_ACTIONS
        merged = {**DEFAULT_ACTIONS, **self.actions}
        if team in self.teams:
            merged.update(self.teams[team])
        if repository and self.repositories:
            key = repository_key(repository)
            for name, actions in self.repositories.items():
                if repository_key(name) == key:
                    merged.update(actions)
        return merged

    def to_dict(self) -> dict[str, Any]:
        return {
            "actions": dict(self.actions),
            "teams": {t: dict(a) for t, a in sorted(self.teams.items())},
            "repositories": {r: dict(a) for r, a in sorted(self.repositories.items())},
        }

    def describe(self) -> list[str]:
        """One line per setting, for `gatehouse policy diff`."""
        lines = [f"guardrails: {d} → {a}" for d, a in sorted(self.actions.items())]
        for kind, scoped in (("team", self.teams), ("repository", self.repositories)):
            for name, actions in sorted(scoped.items()):
                prefix = f"guardrails {kind} {name}"
                lines += [f"{prefix}: {d} → {a}" for d, a in sorted(actions.items())]
        return lines


def parse_guard_actions(item: Checked) -> GuardActions:
    fields = item.mapping(("actions", "teams", "repositories"), "guardrails")
    none = Checked(None, item.where)
    teams = {
        name: _actions(value, f"guardrails for team {name}")
        for name, value in (fields.get("teams") or none).mapping(what="guardrails.teams").items()
    }
    repositories = {
        normalize_repository(name): _actions(value, f"guardrails for {name}")
        for name, value in (fields.get("repositories") or none)
        .mapping(what="guardrails.repositories")
        .items()
    }
    return GuardActions(
        actions=_actions(fields.get("actions") or none, "guardrails.actions"),
        teams=teams,
        repositories=repositories,
    )


def _actions(item: Checked, what: str) -> Mapping[str, str]:
    return {
        detector: value.text(f"the action for {detector}", choices=ACTIONS)
        for detector, value in item.mapping(DETECTORS, what).items()
    }
