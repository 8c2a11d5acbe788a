"""Repository identity: each source on real Claude Code request shapes, conflicts, sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gatehouse.policy.repo_claims import (
    Claim,
    RepositoryIdentity,
    SessionRepositories,
    checkout_root,
    identify,
    mismatch_event,
)
from gatehouse.policy.repos import normalize_repository

FIXTURES = Path(__file__).parents[1] / "fixtures" / "claude_code"


def captured(name: str) -> tuple[dict[str, str], dict[str, Any]]:
    doc = orjson.loads((FIXTURES / name).read_bytes())
    return doc["headers"], doc["body"]


@pytest.mark.parametrize(
    ("fixture", "repository", "source", "root"),
    [
        ("p_2.1.332.json", "/home/dev/cc/run1/repo", "working_directory", "/home/dev/cc/run1/repo"),
        (
            "p_tool_loop_2.1.332.json",
            "/home/dev/work/tooluse/repo",
            "working_directory",
            "/home/dev/work/tooluse/repo",
        ),
        (
            "interactive_remote_2.1.332.json",
            "github.com/acme/payments-service",
            "safeguards",
            "/home/dev/work/interactive4/repo",
        ),
        (
            "interactive_no_remote_2.1.332.json",
            "/home/dev/work/interactive2/repo",
            "working_directory",
            "/home/dev/work/interactive2/repo",
        ),
        (
            "p_2.1.112.json",
            "/home/dev/work/js_p/repo",
            "working_directory",
            "/home/dev/work/js_p/repo",
        ),
        (
            "vertex_2.1.332.json",
            "/home/dev/work/vertex/repo",
            "working_directory",
            "/home/dev/work/vertex/repo",
        ),
        ("count_tokens_2.1.332.json", "", "", ""),
    ],
)
def test_each_captured_shape(fixture: str, repository: str, source: str, root: str) -> None:
    headers, body = captured(fixture)
    identity = identify("", headers, body)
    assert (identity.repository, identity.source, identity.root) == (repository, source, root)
    assert identity.conflicts == ()
    assert checkout_root(body) == root


def test_all_four_sources_in_order_of_trust() -> None:
    headers, body = captured("interactive_remote_2.1.332.json")
    sent = {**headers, "x-gatehouse-repo": "git@github.com:acme/payments-service.git"}
    identity = identify("github.com/acme/payments-service", sent, body)
    assert [c.source for c in identity.claims] == [
        "token",
        "header",
        "safeguards",
        "working_directory",
    ]
    assert (identity.repository, identity.source) == ("github.com/acme/payments-service", "token")
    assert identity.conflicts == ()  # a local path never contradicts a remote
    assert identify("", sent, body).source == "header"


def test_a_lying_header_is_a_conflict_and_the_header_still_wins() -> None:
    headers, body = captured("interactive_remote_2.1.332.json")
    sent = {**headers, "x-gatehouse-repo": "https://github.com/acme/approved-one"}
    identity = identify("", sent, body)
    assert (identity.repository, identity.source) == ("github.com/acme/approved-one", "header")
    assert identity.conflicts == (Claim("safeguards", "github.com/acme/payments-service"),)
    event = mismatch_event(identity, developer="dev@example.com", team="pay", session_id="s1")
    assert event is not None
    assert (event.kind, event.severity, event.session_id) == (
        "repo_claim_mismatch",
        "warning",
        "s1",
    )
    assert event.repository == "github.com/acme/approved-one"
    assert event.detail["conflicts"] == [
        {"source": "safeguards", "value": "github.com/acme/payments-service"}
    ]
    assert {c["source"] for c in event.detail["claims"]} == {
        "header",
        "safeguards",
        "working_directory",
    }
    assert (
        mismatch_event(identify("", headers, body), developer="d", team="", session_id="") is None
    )


def test_a_token_outranks_a_header_that_disagrees() -> None:
    identity = identify("github.com/acme/pay", {"x-gatehouse-repo": "github.com/acme/other"}, {})
    assert (identity.repository, identity.source) == ("github.com/acme/pay", "token")
    assert identity.conflicts == (Claim("header", "github.com/acme/other"),)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("git@github.com:acme/payments.git", "github.com/acme/payments"),
        ("ssh://git@GitHub.com/acme/payments.git", "github.com/acme/payments"),
        ("https://github.com/acme/payments", "github.com/acme/payments"),
        ("https://GITLAB.example.com/acme/payments.git/", "gitlab.example.com/acme/payments"),
    ],
)
def test_header_values_are_normalised(value: str, expected: str) -> None:
    assert identify("", {"x-gatehouse-repo": value}, {}).repository == expected
    assert normalize_repository(value) == expected


def test_background_calls_inherit_the_session_repository() -> None:
    sessions = SessionRepositories()
    headers, body = captured("interactive_remote_2.1.332.json")
    first = sessions.settle("s1", identify("", headers, body))
    assert (first.repository, first.source) == ("github.com/acme/payments-service", "safeguards")
    # A title or quota call: no safeguards, no environment block.
    background = {"model": "claude-haiku-5-5", "messages": [{"role": "user", "content": "title?"}]}
    inherited = sessions.settle("s1", identify("", {}, background))
    assert (inherited.repository, inherited.source) == (
        "github.com/acme/payments-service",
        "session",
    )
    assert inherited.conflicts == ()
    # A request with only its working directory also inherits: a path is not a remote.
    _, p_body = captured("p_2.1.332.json")
    assert sessions.settle("s1", identify("", {}, p_body)).repository == first.repository
    # Another session knows nothing of it.
    assert sessions.settle("s2", identify("", {}, background)).repository == ""


def test_a_session_never_silently_changes_repository() -> None:
    sessions = SessionRepositories()
    sessions.settle("s1", identify("", {"x-gatehouse-repo": "github.com/acme/pay"}, {}))
    later = sessions.settle("s1", identify("", {"x-gatehouse-repo": "github.com/acme/other"}, {}))
    assert (later.repository, later.source) == ("github.com/acme/pay", "session")
    assert later.conflicts == (Claim("header", "github.com/acme/other"),)
    event = mismatch_event(later, developer="d", team="", session_id="s1")
    assert event is not None and event.detail["attributed_source"] == "session"
    assert sessions.first_report("s1", later) is True
    assert sessions.first_report("s1", later) is False  # one event per session, not per turn
    # The same repository again: no conflict.
    again = sessions.settle("s1", identify("", {"x-gatehouse-repo": "github.com/acme/pay"}, {}))
    assert (again.source, again.conflicts) == ("header", ())


def test_a_working_directory_is_refined_by_a_remote_once() -> None:
    sessions = SessionRepositories()
    _, p_body = captured("p_2.1.332.json")
    assert sessions.settle("s1", identify("", {}, p_body)).source == "working_directory"
    # A path binds nothing: a background call of a path-only session stays unattributed.
    assert sessions.settle("s1", identify("", {}, {"messages": []})).repository == ""
    named = sessions.settle("s1", identify("", {"x-gatehouse-repo": "github.com/acme/pay"}, p_body))
    assert (named.repository, named.conflicts) == ("github.com/acme/pay", ())
    held = sessions.get("s1")
    assert held is not None and held.repository == "github.com/acme/pay"


def test_the_session_map_is_bounded_least_recently_used_out() -> None:
    sessions = SessionRepositories(capacity=2)
    for name in ("a", "b"):
        sessions.settle(name, RepositoryIdentity(f"github.com/acme/{name}", "header"))
    sessions.settle("a", RepositoryIdentity())  # touching a keeps it
    sessions.settle("c", RepositoryIdentity("github.com/acme/c", "header"))
    assert len(sessions) == 2
    assert sessions.get("b") is None
    assert sessions.get("a") is not None and sessions.get("c") is not None


def test_no_session_id_means_no_memory() -> None:
    sessions = SessionRepositories()
    own = identify("", {"x-gatehouse-repo": "github.com/acme/pay"}, {})
    assert sessions.settle("", own) is own
    assert len(sessions) == 0
