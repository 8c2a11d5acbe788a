"""The policy document: YAML and JSON round trips, line-precise errors, diffs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gatehouse.errors import InvalidRequest
from gatehouse.policy.document import (
    KillSwitch,
    ModelList,
    PathRule,
    Policy,
    PolicyError,
    Proposal,
    RepoRule,
    diff,
    dump_yaml,
    load_yaml,
    normalize_scope,
)
from gatehouse.policy.globs import compile_globs

AT = 1_764_237_600.0  # 2025-11-27 10:00 UTC

FULL = Policy(
    mode="observe",
    observe_teams=frozenset({"payments"}),
    repositories={
        "github.com/acme/payments": RepoRule(
            "confidential",
            (PathRule("**/*.pem", "block", "pem"), PathRule("secrets/**")),
            "sec@acme.com",
            AT,
            "ticket SEC-1",
        )
    },
    owners={"github.com/acme": "sec-acme"},
    models=ModelList(("claude-sonnet-*",), (Proposal("claude-opus-5", "ops@acme.com", AT, "x"),)),
    killswitches=(KillSwitch("team:payments", "incident 42", True, "sec@acme.com", None, AT),),
    unattributed="deny",
    contact="security@acme.com",
)


def test_yaml_and_json_round_trip() -> None:
    text = dump_yaml(FULL)
    assert "approved_at: '2025-11-27T10:00:00Z'" in text
    assert load_yaml(text) == FULL
    assert Policy.from_dict(FULL.to_dict()) == FULL
    assert load_yaml(dump_yaml(Policy())) == Policy()


def test_an_empty_file_is_the_default_policy() -> None:
    assert load_yaml("") == Policy()
    assert load_yaml("# nothing\n") == Policy()


@pytest.mark.parametrize(
    ("text", "where", "says"),
    [
        ("mode: enforce\nmode: observe\n", ":2", "duplicate key 'mode'"),
        ("mode: strict\n", ":1", "one of enforce, observe"),
        ("colour: red\n", ":1", "unknown key 'colour'"),
        (
            "repositories:\n  github.com/acme/pay:\n    classification: secret\n",
            ":3",
            "public, internal, confidential, restricted",
        ),
        (
            "repositories:\n  github.com/acme/pay:\n    classification: internal\n"
            "    paths:\n      - glob: '**/*.pem'\n        action: shred\n",
            ":6",
            "redact, block",
        ),
        ("repositories:\n  payments:\n    classification: internal\n", ":2", "host/owner/name"),
        (
            "repositories:\n  github.com/acme/pay:\n    classification: internal\n"
            "  GitHub.com/acme/pay:\n    classification: public\n",
            ":4",
            "same repository",
        ),
        ("killswitches:\n  - scope: everyone\n    reason: x\n", ":2", "kill-switch scope"),
        ("killswitches:\n  - scope: global\n", ":2", "reason is missing"),
        ("models:\n  approved: [claude-*\n", ":3", "flow sequence on line 2"),
        ("killswitches:\n  - scope: global\n    reason: r\n    at: yesterday\n", ":4", "ISO"),
        ("killswitches:\n  - scope: global\n    reason: r\n    show_reason: maybe\n", ":4", "true"),
        ("- just\n- a list\n", ":1", "mapping"),
    ],
)
def test_invalid_files_name_the_line(text: str, where: str, says: str) -> None:
    with pytest.raises(PolicyError) as refused:
        load_yaml(text, "acme.yaml")
    assert refused.value.message.startswith(f"acme.yaml{where}: "), refused.value.message
    assert says in refused.value.message
    assert isinstance(refused.value, InvalidRequest)


def test_repository_names_are_normalised() -> None:
    policy = load_yaml(
        "repositories:\n  git@GitHub.com:acme/pay.git:\n    classification: public\n"
    )
    assert list(policy.repositories) == ["github.com/acme/pay"]
    assert policy.rule_for("https://github.com/Acme/Pay") is not None


def test_scopes_are_normalised() -> None:
    assert normalize_scope("GLOBAL") == "global"
    assert normalize_scope("repository:https://GitHub.com/acme/pay.git") == (
        "repository:github.com/acme/pay"
    )
    assert normalize_scope("developer:Ada@Example.com") == "developer:ada@example.com"
    for bad in ("team:", "global:x", "developer:ada", "repository:pay", "org:acme"):
        with pytest.raises(PolicyError):
            normalize_scope(bad)


def test_owner_is_the_longest_matching_prefix() -> None:
    policy = Policy(owners={"github.com/acme": "sec", "github.com/acme/payments": "pay-sec"})
    assert policy.owner_of("github.com/acme/payments") == "pay-sec"
    assert policy.owner_of("github.com/acme/payments-ui") == "sec"
    assert policy.owner_of("github.com/other/x") is None


def test_diff_says_what_changes() -> None:
    lines = diff(Policy(), FULL)
    assert "mode: enforce → observe" in lines
    assert "+ repository github.com/acme/payments (confidential, 2 path rules)" in lines
    assert "+ approved model claude-sonnet-*" in lines
    assert "+ kill switch team:payments: incident 42" in lines
    assert diff(FULL, FULL) == []
    assert "- kill switch team:payments" in diff(FULL, FULL.replace(killswitches=()))


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("**/*.pem", "a/b/key.pem", True),
        ("**/*.pem", "key.pem", True),
        ("*.pem", "deep/dir/key.pem", True),
        ("**/.env*", "svc/.env.production", True),
        ("secrets/**", "secrets/prod.env", True),
        ("secrets/**", "app/secrets/prod.env", False),
        ("infra/prod/**", "infra/prod/db/main.tf", True),
        ("infra/prod/**", "infra/staging/main.tf", False),
        ("src/*.py", "src/a/b.py", False),
        ("id_[rd]sa", "home/.ssh/id_rsa", True),
    ],
)
def test_path_globs(glob: str, path: str, matches: bool) -> None:
    pattern = compile_globs([glob])
    assert pattern is not None
    assert bool(pattern.match(path)) is matches


names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)
rules = st.builds(
    RepoRule,
    classification=st.sampled_from(("public", "internal", "confidential", "restricted")),
    paths=st.lists(
        st.builds(
            PathRule,
            glob=names.map(lambda n: f"**/{n}"),
            action=st.sampled_from(("redact", "block")),
            name=names,
        ),
        max_size=3,
    ).map(tuple),
    approved_by=names,
    approved_at=st.integers(0, 2_000_000_000).map(float),
    reason=st.text(max_size=20).map(str.strip),
)
policies = st.builds(
    Policy,
    mode=st.sampled_from(("enforce", "observe")),
    observe_teams=st.frozensets(names, max_size=3),
    repositories=st.dictionaries(names.map(lambda n: f"github.com/acme/{n}"), rules, max_size=4),
    models=st.builds(ModelList, approved=st.lists(names, max_size=3).map(tuple)),
    killswitches=st.lists(
        st.builds(
            KillSwitch,
            scope=names.map(lambda n: f"team:{n}"),
            reason=st.text(min_size=1, max_size=20).map(str.strip).filter(bool),
            show_reason=st.booleans(),
            at=st.integers(0, 2_000_000_000).map(float),
        ),
        max_size=3,
        unique_by=lambda k: k.scope,
    ).map(tuple),
    unattributed=st.sampled_from(("deny", "allow")),
    contact=st.text(max_size=20).map(str.strip),
)


@given(policies)
def test_every_policy_round_trips_through_yaml(policy: Policy) -> None:
    assert load_yaml(dump_yaml(policy)) == policy
    assert diff(policy, load_yaml(dump_yaml(policy))) == []
