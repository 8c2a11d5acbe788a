"""`decide()`: principal + request facts + policy snapshot → Allow, Deny or Observe.

Pure and synchronous; no I/O.  The order is fixed and is the whole contract:

1. **Kill switch** — global, then the developer's team, the repository, the
   developer.  A thrown switch denies in every mode, observe included: it is
   security's incident stop and wins over everything.
2. **Vendor veto** — every model the request names must match the policy's
   approved globs (when the list is non-empty) *and* ``GATEHOUSE_APPROVED_MODELS``
   (when set; the bootstrap list before a policy exists).  Each non-empty list
   is a veto of its own; with both empty every model is allowed.  Also enforced
   in observe mode: observe is a rollout aid for the allow-list, not for vetoes
   that existed before it.
3. **Repository allow-list** — default deny.  No repository at all (or only a
   local working directory) follows the policy's ``unattributed`` rule.  In
   observe mode (the policy's, ``GATEHOUSE_POLICY_MODE=observe``, or the
   developer's team listed in ``observe_teams``) a would-be denial becomes
   `Observe` and the request goes on.

An allowed request carries its repository's `RepoRule`, whose path rules the
proxy hands to the tool-result rewriter (the ``Rewrite`` step of the design).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from gatehouse.errors import GatewayError, PermissionDenied
from gatehouse.identity.principal import Principal
from gatehouse.policy.document import KillSwitch, Policy, RepoRule
from gatehouse.policy.globs import compile_globs
from gatehouse.policy.repos import repository_key

# Deny reasons (stable codes: events, metrics and tests read them).
KILLSWITCH = "killswitch"
MODEL_NOT_APPROVED = "model_not_approved"
REPOSITORY_NOT_APPROVED = "repository_not_approved"
UNATTRIBUTED = "unattributed"


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """What the proxy learned about one request, as decide() needs it.

    ``models`` is every model the request names (a batch names several);
    ``check_repository`` is false where the allow-list does not apply
    (``count_tokens`` and passthrough endpoints, which carry no context).
    """

    developer: str
    team: str = ""
    repository: str = ""
    repository_source: str = ""
    models: tuple[str, ...] = ()
    session_id: str = ""
    check_repository: bool = True


@dataclass(frozen=True, slots=True)
class Allow:
    """Go ahead; ``rule`` is the repository's approval (path rules to apply), if any."""

    rule: RepoRule | None = None


@dataclass(frozen=True, slots=True)
class Deny:
    """Refuse with ``error`` (a 403 `PermissionDenied` carrying the developer's message)."""

    reason: str
    error: GatewayError


@dataclass(frozen=True, slots=True)
class Observe:
    """Observe mode: the request goes on, but ``would_deny`` says what enforce would do."""

    would_deny: Deny
    rule: RepoRule | None = None


Decision = Allow | Deny | Observe


class PolicySnapshot:
    """A `Policy` precomputed for the hot path: dict lookups and one compiled regex."""

    __slots__ = (
        "_model_cache",
        "_model_veto",
        "approved",
        "contact",
        "env_models",
        "global_switch",
        "killswitches",
        "observe_all",
        "observe_teams",
        "policy",
        "repositories",
        "unattributed_allowed",
        "version",
    )

    def __init__(
        self,
        policy: Policy,
        *,
        version: int = 0,
        env_models: Iterable[str] = (),
        force_observe: bool = False,
    ) -> None:
        self.policy = policy
        self.version = version
        self.observe_all = force_observe or policy.mode == "observe"
        self.observe_teams = policy.observe_teams
        self.unattributed_allowed = policy.unattributed == "allow"
        self.contact = policy.contact
        self.repositories = {repository_key(n): r for n, r in policy.repositories.items()}
        self.killswitches = {k.scope: k for k in policy.killswitches}
        self.global_switch = self.killswitches.get("global")
        self.approved = policy.models.approved
        self.env_models = tuple(env_models)
        vetoes = [compile_globs(g) for g in (self.approved, self.env_models) if g]
        self._model_veto = tuple(v for v in vetoes if v is not None)
        self._model_cache: dict[str, bool] = {}

    def model_allowed(self, model: str) -> bool:
        allowed = self._model_cache.get(model)
        if allowed is None:
            allowed = all(v.match(model) for v in self._model_veto)
            if len(self._model_cache) < 4096:  # bounded: model names come from requests
                self._model_cache[model] = allowed
        return allowed

    def approved_models(self) -> tuple[str, ...]:
        """What the refusal lists: the policy's globs, else the bootstrap setting's."""
        return self.approved or self.env_models


def decide(principal: Principal, facts: RequestFacts, snapshot: PolicySnapshot) -> Decision:
    """The policy's answer for one request; see the module docstring for the order."""
    switches = snapshot.killswitches
    if switches:
        switch = snapshot.global_switch
        if switch is None and facts.team:
            switch = switches.get("team:" + facts.team)
        if switch is None and facts.repository:
            switch = switches.get("repository:" + repository_key(facts.repository))
        if switch is None:
            switch = switches.get("developer:" + facts.developer.lower())
        if switch is not None:
            return Deny(KILLSWITCH, PermissionDenied(killswitch_message(switch, snapshot)))
    for model in facts.models:
        if not snapshot.model_allowed(model):
            return Deny(MODEL_NOT_APPROVED, PermissionDenied(model_message(model, snapshot)))
    if not facts.check_repository:
        return Allow()
    rule: RepoRule | None = None
    denial: Deny | None = None
    if not facts.repository or facts.repository_source == "working_directory":
        if not snapshot.unattributed_allowed:
            denial = Deny(UNATTRIBUTED, PermissionDenied(unattributed_message(facts)))
    else:
        rule = snapshot.repositories.get(repository_key(facts.repository))
        if rule is None:
            denial = Deny(
                REPOSITORY_NOT_APPROVED,
                PermissionDenied(repository_message(facts.repository, snapshot)),
            )
    if denial is None:
        return Allow(rule)
    if snapshot.observe_all or facts.team in snapshot.observe_teams:
        return Observe(denial, rule)
    return denial


# -- what the developer reads -----------------------------------------------------


def killswitch_message(switch: KillSwitch, snapshot: PolicySnapshot) -> str:
    what = {
        "global": "all Claude Code traffic",
        "team": f"team {switch.target}",
        "repository": f"repository {switch.target}",
        "developer": f"your access ({switch.target})",
    }[switch.kind]
    contact = snapshot.contact or switch.on_behalf_of or switch.thrown_by or "your security team"
    when = (
        datetime.fromtimestamp(switch.at, tz=UTC).strftime(" at %Y-%m-%d %H:%M UTC")
        if switch.at
        else ""
    )
    why = (
        f" Reason: {switch.reason}."
        if switch.show_reason and switch.reason
        else " The reason is not shown."
    )
    return (
        f"Gatehouse has stopped {what}: security threw a kill switch{when}.{why} "
        f"Contact {contact} for details; requests resume when security lifts it."
    )


def model_message(model: str, snapshot: PolicySnapshot) -> str:
    approved = ", ".join(snapshot.approved_models()) or "none"
    return (
        f"Model {model!r} is not approved for use through Gatehouse. Approved: {approved}. "
        "Choose one of those (claude --model, ANTHROPIC_MODEL) or ask your security team "
        "to approve this model (platform proposes it with `gatehouse models propose`)."
    )


def repository_message(repository: str, snapshot: PolicySnapshot) -> str:
    owner = snapshot.policy.owner_of(repository)
    decider = f"its data-classification owners ({owner})" if owner else "your security team"
    return (
        f"Repository {repository} is not approved for use with Claude Code through "
        "Gatehouse (repositories are denied until approved). Request access with "
        f'`gatehouse repos request {repository} --reason "what you need it for"`; '
        f"{decider} will approve or deny it, and `gatehouse repos status` shows the outcome."
    )


def unattributed_message(facts: RequestFacts) -> str:
    seen = (
        f"it only knows the local directory {facts.repository}, "
        if facts.repository
        else "the request names none, "
    )
    return (
        "Gatehouse cannot tell which repository this request is for: "
        f"{seen}and only approved repositories may send context. Name the repository "
        "with the X-Gatehouse-Repo header, for example "
        'ANTHROPIC_CUSTOM_HEADERS="X-Gatehouse-Repo: github.com/acme/payments" '
        "(or sign in with `gatehouse login` and use `gatehouse key-helper`, whose tokens "
        "carry the repository), or work inside a git checkout whose origin is approved."
    )
