"""decide(): the order (kill switch, vendor veto, allow-list), the messages, the properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatehouse.errors import PermissionDenied
from gatehouse.identity.principal import Principal
from gatehouse.policy.decide import (
    KILLSWITCH,
    MODEL_NOT_APPROVED,
    REPOSITORY_NOT_APPROVED,
    UNATTRIBUTED,
    Allow,
    Deny,
    Observe,
    PolicySnapshot,
    RequestFacts,
    decide,
)
from gatehouse.policy.document import KillSwitch, ModelList, PathRule, Policy, RepoRule

ADA = Principal("ada@acme.com", team="payments")
PAYMENTS = "github.com/acme/payments"
RULE = RepoRule("confidential", (PathRule("**/*.pem", "block"),), "sec@acme.com")
APPROVED = Policy(repositories={PAYMENTS: RULE}, contact="security@acme.com")


def facts(repository: str = PAYMENTS, **kw: object) -> RequestFacts:
    base: dict[str, object] = {
        "developer": ADA.email,
        "team": ADA.team,
        "repository": repository,
        "repository_source": "header" if repository else "",
        "models": ("claude-sonnet-4-6",),
    }
    base.update(kw)
    return RequestFacts(**base)  # type: ignore[arg-type]


def test_approved_repository_is_allowed_with_its_rule() -> None:
    decision = decide(ADA, facts(), PolicySnapshot(APPROVED))
    assert decision == Allow(RULE)


def test_any_spelling_of_an_approved_repository_matches() -> None:
    snapshot = PolicySnapshot(APPROVED)
    for name in ("git@GitHub.com:acme/payments.git", "https://github.com/Acme/Payments/"):
        assert isinstance(decide(ADA, facts(name), snapshot), Allow)


def test_unknown_repository_is_denied_with_how_to_request_it() -> None:
    decision = decide(ADA, facts("github.com/acme/ledger"), PolicySnapshot(APPROVED))
    assert isinstance(decision, Deny)
    assert decision.reason == REPOSITORY_NOT_APPROVED
    assert isinstance(decision.error, PermissionDenied)
    assert decision.error.status == 403
    assert "gatehouse repos request github.com/acme/ledger --reason" in decision.error.message


def test_the_owner_group_is_named() -> None:
    policy = APPROVED.replace(owners={"github.com/acme": "acme-data-owners"})
    decision = decide(ADA, facts("github.com/acme/ledger"), PolicySnapshot(policy))
    assert isinstance(decision, Deny)
    assert "acme-data-owners" in decision.error.message


@pytest.mark.parametrize(
    ("repository", "source"), [("", ""), ("/home/ada/pay", "working_directory")]
)
def test_unattributed_requests_say_how_to_name_the_repository(repository: str, source: str) -> None:
    decision = decide(ADA, facts(repository, repository_source=source), PolicySnapshot(APPROVED))
    assert isinstance(decision, Deny)
    assert decision.reason == UNATTRIBUTED
    assert "X-Gatehouse-Repo" in decision.error.message
    assert "ANTHROPIC_CUSTOM_HEADERS" in decision.error.message
    assert "key-helper" in decision.error.message
    allowing = PolicySnapshot(APPROVED.replace(unattributed="allow"))
    assert decide(ADA, facts(repository, repository_source=source), allowing) == Allow()


def test_model_veto_lists_what_is_approved() -> None:
    policy = APPROVED.replace(models=ModelList(("claude-sonnet-*", "claude-haiku-4-5")))
    decision = decide(ADA, facts(models=("claude-opus-5",)), PolicySnapshot(policy))
    assert isinstance(decision, Deny)
    assert decision.reason == MODEL_NOT_APPROVED
    assert "claude-sonnet-*, claude-haiku-4-5" in decision.error.message


def test_the_setting_and_the_policy_are_each_a_veto() -> None:
    policy = APPROVED.replace(models=ModelList(("claude-*",)))
    both = PolicySnapshot(policy, env_models=("claude-sonnet-*",))
    assert isinstance(decide(ADA, facts(models=("claude-sonnet-4-6",)), both), Allow)
    assert isinstance(decide(ADA, facts(models=("claude-opus-5",)), both), Deny)
    setting_only = PolicySnapshot(APPROVED, env_models=("claude-sonnet-*",))
    refused = decide(ADA, facts(models=("claude-opus-5",)), setting_only)
    assert isinstance(refused, Deny)
    assert "claude-sonnet-*" in refused.error.message
    assert isinstance(decide(ADA, facts(models=("anything",)), PolicySnapshot(APPROVED)), Allow)


@pytest.mark.parametrize(
    "scope",
    ["global", "team:payments", "repository:github.com/acme/payments", "developer:ada@acme.com"],
)
def test_every_kill_switch_scope_stops_the_request(scope: str) -> None:
    switch = KillSwitch(scope, "token leak", show_reason=False, thrown_by="sec@acme.com")
    snapshot = PolicySnapshot(APPROVED.replace(killswitches=(switch,)))
    decision = decide(ADA, facts(), snapshot)
    assert isinstance(decision, Deny)
    assert decision.reason == KILLSWITCH
    assert "security@acme.com" in decision.error.message
    assert "token leak" not in decision.error.message
    other = Principal("bo@acme.com", team="web")
    other_facts = facts("github.com/acme/web", developer=other.email, team=other.team)
    stopped = decide(other, other_facts, snapshot)
    assert (isinstance(stopped, Deny) and stopped.reason == KILLSWITCH) is (scope == "global")


def test_the_reason_is_shown_only_when_security_chose_so() -> None:
    switch = KillSwitch("global", "token leak", show_reason=True, thrown_by="sec@acme.com")
    decision = decide(ADA, facts(), PolicySnapshot(Policy(killswitches=(switch,))))
    assert isinstance(decision, Deny)
    assert "Reason: token leak." in decision.error.message
    assert "sec@acme.com" in decision.error.message  # no contact set: who threw it


def test_count_tokens_and_passthrough_skip_the_allow_list() -> None:
    snapshot = PolicySnapshot(Policy())
    assert decide(ADA, facts("", models=(), check_repository=False), snapshot) == Allow()


def test_observe_mode_and_observed_teams_report_instead_of_denying() -> None:
    for snapshot in (
        PolicySnapshot(Policy(mode="observe")),
        PolicySnapshot(Policy(), force_observe=True),
        PolicySnapshot(Policy(observe_teams=frozenset({"payments"}))),
    ):
        decision = decide(ADA, facts(), snapshot)
        assert isinstance(decision, Observe)
        assert decision.would_deny.reason == REPOSITORY_NOT_APPROVED
    web = facts(team="web")
    assert isinstance(
        decide(ADA, web, PolicySnapshot(Policy(observe_teams=frozenset({"payments"})))), Deny
    )


# -- properties --------------------------------------------------------------------

teams = st.sampled_from(("payments", "web", "data", ""))
repos = st.sampled_from((PAYMENTS, "github.com/acme/web", "github.com/other/x", ""))
developers = st.sampled_from(("ada@acme.com", "bo@acme.com"))
models = st.sampled_from(("claude-sonnet-4-6", "claude-opus-5", "gpt-5"))
scopes = st.sampled_from(
    (
        "global",
        "team:payments",
        "team:web",
        f"repository:{PAYMENTS}",
        "repository:github.com/acme/web",
        "developer:ada@acme.com",
    )
)
switches = st.lists(
    st.builds(KillSwitch, scope=scopes, reason=st.just("r"), show_reason=st.booleans()),
    unique_by=lambda k: k.scope,
    max_size=3,
).map(tuple)
policies = st.builds(
    Policy,
    mode=st.sampled_from(("enforce", "observe")),
    observe_teams=st.frozensets(teams, max_size=2),
    repositories=st.dictionaries(repos.filter(bool), st.just(RULE), max_size=3),
    models=st.builds(
        ModelList,
        approved=st.lists(st.sampled_from(("claude-*", "claude-sonnet-*")), max_size=2).map(tuple),
    ),
    killswitches=switches,
    unattributed=st.sampled_from(("deny", "allow")),
)
requests = st.builds(
    RequestFacts,
    developer=developers,
    team=teams,
    repository=repos,
    repository_source=st.sampled_from(("header", "safeguards", "token")),
    models=st.lists(models, max_size=2).map(tuple),
    check_repository=st.booleans(),
)


def _switched(policy: Policy, request: RequestFacts) -> bool:
    scopes = {k.scope for k in policy.killswitches}
    return bool(
        "global" in scopes
        or (request.team and f"team:{request.team}" in scopes)
        or (request.repository and f"repository:{request.repository}" in scopes)
        or f"developer:{request.developer}" in scopes
    )


@given(policies, requests, st.booleans())
def test_kill_switch_wins_over_everything(
    policy: Policy, request: RequestFacts, observe: bool
) -> None:
    decision = decide(ADA, request, PolicySnapshot(policy, force_observe=observe))
    if _switched(policy, request):
        assert isinstance(decision, Deny) and decision.reason == KILLSWITCH
    else:
        assert not (isinstance(decision, Deny) and decision.reason == KILLSWITCH)


@given(policies, requests)
def test_observe_mode_never_denies_on_the_allow_list(policy: Policy, request: RequestFacts) -> None:
    decision = decide(ADA, request, PolicySnapshot(policy, force_observe=True))
    if isinstance(decision, Deny):
        assert decision.reason in (KILLSWITCH, MODEL_NOT_APPROVED)


@given(policies, requests)
def test_deny_wins_over_allow(policy: Policy, request: RequestFacts) -> None:
    """Adding a veto (a kill switch, a narrower model list, a removed repository) never
    turns a denial into an allow."""
    before = decide(ADA, request, PolicySnapshot(policy))
    stricter = [
        policy.replace(
            killswitches=(*policy.killswitches, KillSwitch("developer:zed@acme.com", "r"))
        ),
        policy.replace(models=ModelList((*policy.models.approved, "claude-sonnet-*")[-1:])),
        policy.replace(repositories={}),
    ]
    if isinstance(before, Deny):
        for narrower in stricter:
            after = decide(ADA, request, PolicySnapshot(narrower))
            assert isinstance(after, Deny), (narrower, after)


@given(policies, requests)
def test_an_approved_repository_with_every_veto_passed_is_allowed(
    policy: Policy, request: RequestFacts
) -> None:
    open_policy = policy.replace(killswitches=(), models=ModelList())
    decision = decide(ADA, request, PolicySnapshot(open_policy))
    in_list = bool(request.repository) and request.repository in open_policy.repositories
    if request.check_repository and in_list:
        assert decision == Allow(RULE)
    if not request.check_repository:
        assert decision == Allow()
