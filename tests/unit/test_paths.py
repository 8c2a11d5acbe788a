"""Path rules over Claude Code tool loops: pairing, matching, markers, cache-safe bytes."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest

from gatehouse.policy.document import PathRule
from gatehouse.policy.pathmatch import PathRules, PathRulesCache
from gatehouse.policy.paths import (
    apply_path_rules,
    blocked_message,
    content_marker,
    path_events,
)
from gatehouse.policy.shell import bash_paths

FIXTURE = Path(__file__).parents[1] / "fixtures" / "claude_code" / "p_tool_loop_2.1.332.json"
ROOT = "/home/dev/work/tooluse/repo"  # the fixture's "Primary working directory"
SECRET = "STRIPE_KEY=sk_live_do_not_leak"

SECRETS = PathRule("secrets/**", "redact", "secrets")
PEM = PathRule("**/*.pem", "block", "keys")
ENV = PathRule("**/.env*", "redact")
PROD = PathRule("infra/prod/**", "block", "prod")


def rules(*chosen: PathRule) -> PathRules:
    return PathRules(chosen or (SECRETS, PEM, ENV, PROD))


def conversation(*turns: tuple[str, dict[str, Any], Any]) -> dict[str, Any]:
    """The captured tool loop's first messages, then one (tool, input, result) turn each."""
    body = copy.deepcopy(orjson.loads(FIXTURE.read_bytes())["body"])
    messages = body["messages"][:2]  # the prompt and Claude Code's role:system message
    for i, (tool, tool_input, result) in enumerate(turns):
        use_id = f"toolu_{i:04d}"
        messages.append(
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": use_id, "name": tool, "input": tool_input}],
            }
        )
        block = {"tool_use_id": use_id, "type": "tool_result", "content": result, "is_error": False}
        messages.append({"role": "user", "content": [block]})
    messages[-1]["content"][-1]["cache_control"] = {"type": "ephemeral"}
    body["messages"] = messages
    return body


def run(body: dict[str, Any], chosen: PathRules | None = None) -> tuple[bytes, Any]:
    raw = orjson.dumps(body)
    outcome = apply_path_rules(raw, body, chosen if chosen is not None else rules())
    return raw, outcome


def results(out: bytes) -> list[Any]:
    return [
        b["content"]
        for m in orjson.loads(out)["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]


def test_read_of_a_secret_is_redacted_with_a_marker_naming_rule_and_path() -> None:
    body = conversation(("Read", {"file_path": f"{ROOT}/secrets/prod.env"}, f"1→{SECRET}"))
    raw, outcome = run(body)
    assert SECRET.encode() not in outcome.body
    marker = '[gatehouse: content of secrets/prod.env withheld by path rule "secrets" (redact)]'
    assert results(outcome.body) == [marker]
    [hit] = outcome.applied
    assert (hit.rule, hit.action, hit.path, hit.tool, hit.new) == (
        "secrets",
        "redact",
        "secrets/prod.env",
        "Read",
        True,
    )
    assert outcome.blocked is None
    # Only the block changed: everything before and after it is the original bytes.
    start = raw.index(b'{"tool_use_id":"toolu_0000"')
    assert outcome.body[:start] == raw[:start]
    assert outcome.body.endswith(raw[raw.index(b',"is_error":false', start) :])


def test_nothing_matching_keeps_the_original_bytes() -> None:
    body = conversation(("Read", {"file_path": f"{ROOT}/src/app.py"}, "print('hi')"))
    raw, outcome = run(body)
    assert outcome.body is raw
    assert outcome.applied == ()


@pytest.mark.parametrize(
    ("tool", "tool_input"),
    [
        ("Read", {"file_path": f"{ROOT}/config/.env.production"}),
        ("Edit", {"file_path": f"{ROOT}/secrets/a.yaml", "old_string": "a", "new_string": "b"}),
        ("Write", {"file_path": f"{ROOT}/secrets/new.txt", "content": "x"}),
        ("NotebookEdit", {"notebook_path": f"{ROOT}/secrets/n.ipynb", "new_source": "x"}),
        ("NotebookRead", {"notebook_path": "secrets/n.ipynb"}),
        ("Bash", {"command": "cat secrets/prod.env | head -n 3"}),
        ("Bash", {"command": f"cd {ROOT}/secrets && sed -n '1,5p' prod.env"}),
        ("Bash", {"command": "tail -f < secrets/log"}),
        ("Grep", {"pattern": "KEY", "path": f"{ROOT}/secrets/prod.env", "output_mode": "content"}),
    ],
)
def test_each_tool_that_reads_a_file(tool: str, tool_input: dict[str, Any]) -> None:
    _, outcome = run(conversation((tool, tool_input, SECRET)))
    assert SECRET.encode() not in outcome.body, tool
    [hit] = outcome.applied
    assert hit.tool == tool


def test_block_refuses_and_names_rule_and_path_never_content() -> None:
    body = conversation(
        ("Read", {"file_path": f"{ROOT}/secrets/prod.env"}, SECRET),
        ("Read", {"file_path": f"{ROOT}/deploy/tls/server.pem"}, "-----BEGIN PRIVATE KEY-----"),
    )
    _, outcome = run(body)
    assert outcome.blocked is not None
    assert (outcome.blocked.rule, outcome.blocked.path) == ("keys", "deploy/tls/server.pem")
    message = blocked_message(outcome.blocked, "github.com/acme/pay")
    assert '"keys"' in message and "deploy/tls/server.pem" in message
    assert "BEGIN" not in message
    events = path_events(
        outcome, developer="d@x", team="t", repository="github.com/acme/pay", session_id="s"
    )
    assert [e.detail["action"] for e in events] == ["block"]  # the earlier turn is not new


def test_grep_and_glob_listings_withhold_matching_entries_only() -> None:
    listing = f"Found 3 files\n{ROOT}/src/app.py\n{ROOT}/secrets/prod.env\n{ROOT}/README.md"
    lines = f"{ROOT}/src/app.py:3:KEY = load()\n{ROOT}/secrets/prod.env:1:{SECRET}"
    body = conversation(
        ("Glob", {"pattern": "**/*"}, listing),
        ("Grep", {"pattern": "KEY", "output_mode": "content"}, lines),
        ("Grep", {"pattern": "KEY"}, [{"type": "text", "text": listing}]),
    )
    _, outcome = run(body)
    glob_result, grep_result, grep_files = results(outcome.body)
    marker = '[gatehouse: secrets/prod.env withheld by path rule "secrets" (redact)]'
    assert glob_result.splitlines() == [
        "Found 3 files",
        f"{ROOT}/src/app.py",
        marker,
        f"{ROOT}/README.md",
    ]
    assert grep_result.splitlines() == [f"{ROOT}/src/app.py:3:KEY = load()", marker]
    assert grep_files[0]["text"] == glob_result
    assert SECRET.encode() not in outcome.body


def test_a_listing_entry_under_a_block_rule_is_withheld_not_refused() -> None:
    """A file name is not its content: listings never block, content lines do."""
    listing = f"{ROOT}/deploy/server.pem\n{ROOT}/src/app.py"
    _, outcome = run(conversation(("Glob", {"pattern": "**/*"}, listing)))
    assert outcome.blocked is None
    assert "server.pem withheld" in results(outcome.body)[0]
    content = f"{ROOT}/deploy/server.pem:1:-----BEGIN"
    _, outcome = run(
        conversation(("Grep", {"pattern": "BEGIN", "output_mode": "content"}, content))
    )
    assert outcome.blocked is not None


def test_two_turns_rewrite_the_same_block_to_the_same_bytes() -> None:
    """The prompt cache keys on bytes: what turn 1 sent must be turn 2's prefix."""
    first_turn = (("Read", {"file_path": f"{ROOT}/secrets/prod.env"}, SECRET),)
    second_turn = (*first_turn, ("Read", {"file_path": f"{ROOT}/src/app.py"}, "print('hi')"))
    _, one = run(conversation(*first_turn))
    _, two = run(conversation(*second_turn))
    # Claude Code moves cache_control to the newest block; up to it, bytes are equal.
    shared = one.body.index(b',"cache_control"')
    assert two.body[:shared] == one.body[:shared]
    assert [h.new for h in two.applied] == [False]  # recorded once, when it was new
    # And the same again on the third resend.
    _, three = run(conversation(*second_turn))
    assert three.body == two.body


def test_paths_outside_the_checkout_match_as_if_globs_began_with_double_star() -> None:
    chosen = rules(SECRETS)
    _, outcome = run(conversation(("Read", {"file_path": "/srv/other/secrets/x"}, SECRET)), chosen)
    assert [h.path for h in outcome.applied] == ["/srv/other/secrets/x"]
    _, outcome = run(conversation(("Read", {"file_path": "/srv/other/src/x"}, SECRET)), chosen)
    assert outcome.applied == ()


def test_matching_ignores_case_and_dot_segments() -> None:
    chosen = rules(SECRETS)
    path = f"{ROOT}/src/../Secrets/./Prod.env"
    _, outcome = run(conversation(("Read", {"file_path": path}, SECRET)), chosen)
    assert [h.path for h in outcome.applied] == ["Secrets/Prod.env"]


def test_results_without_their_tool_use_are_left_alone() -> None:
    body = conversation(("Read", {"file_path": f"{ROOT}/secrets/prod.env"}, SECRET))
    del body["messages"][2]  # the assistant's tool_use (e.g. cleared by compaction)
    raw, outcome = run(body)
    assert outcome.body is raw


def test_marker_depends_only_on_rule_and_path() -> None:
    assert content_marker(SECRETS, "secrets/a") == content_marker(SECRETS, "secrets/a")
    assert content_marker(SECRETS, "secrets/a") != content_marker(SECRETS, "secrets/b")


def test_block_wins_over_redact_and_first_rule_wins_otherwise() -> None:
    compiled = rules(PathRule("secrets/**", "redact", "one"), PathRule("**/*.pem", "block", "two"))
    hit = compiled.match("secrets/tls.pem")
    assert hit is not None and hit.label == "two"
    both = rules(PathRule("secrets/**", "redact", "one"), PathRule("secrets/*", "redact", "two"))
    hit = both.match("secrets/a")
    assert hit is not None and hit.label == "one"


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("**/*.pem", "a/b/c.pem", True),
        ("**/*.pem", "c.pem", True),
        ("*.pem", "deep/c.pem", True),
        ("**/.env*", ".env", True),
        ("**/.env*", "app/.env.local", True),
        ("**/.env*", "app/env", False),
        ("secrets/**", "secrets/a/b", True),
        ("secrets/**", "app/secrets/a", False),
        ("infra/prod/**", "infra/prod/main.tf", True),
        ("infra/prod/**", "infra/staging/main.tf", False),
        ("config/*/db.yaml", "config/eu/db.yaml", True),
        ("config/*/db.yaml", "config/eu/x/db.yaml", False),
        ("*secret*", "a/my-secret-file", True),
        ("?.key", "a.key", True),
        ("[ab].key", "c.key", False),
    ],
)
def test_glob_semantics(glob: str, path: str, matches: bool) -> None:
    assert (PathRules([PathRule(glob)]).match(path) is not None) is matches


def test_compiled_rules_are_reused_per_rule_tuple() -> None:
    cache = PathRulesCache()
    chosen = (SECRETS, PEM)
    assert cache.get(chosen) is cache.get(chosen)
    assert cache.get((SECRETS,)) is not cache.get(chosen)


@pytest.mark.parametrize(
    ("command", "paths", "searches"),
    [
        ("cat a b", ["a", "b"], False),
        ("head -n 5 x && tail -c 10 y", ["x", "y"], False),
        ("sed -n '1,5p' conf.pem", ["conf.pem"], False),
        ("awk '{print $1}' data.csv", ["data.csv"], False),
        ("grep -rn KEY secrets", ["secrets"], True),
        ("grep -e KEY file", ["file"], True),
        ("echo hi > secrets/out", [], False),
        ("cd secrets && cat prod.env", ["secrets/prod.env"], False),
        ("FOO=1 sudo cat /etc/shadow 2>&1", ["/etc/shadow"], False),
        ("python script.py < input.txt", ["input.txt"], False),
        ("cat 'unterminated", ["'unterminated"], False),
    ],
)
def test_bash_commands_that_read_files(command: str, paths: list[str], searches: bool) -> None:
    assert bash_paths(command) == (paths, searches)


def test_bash_grep_output_lines_are_content() -> None:
    output = f"secrets/prod.env:1:{SECRET}\nsrc/app.py:2:KEY"
    _, outcome = run(conversation(("Bash", {"command": "grep -rn KEY ."}, output)))
    assert results(outcome.body)[0].splitlines() == [
        '[gatehouse: secrets/prod.env withheld by path rule "secrets" (redact)]',
        "src/app.py:2:KEY",
    ]


def test_a_listed_directory_under_a_block_rule_is_withheld_not_refused() -> None:
    _, outcome = run(conversation(("Glob", {"pattern": "*", "path": f"{ROOT}/infra/prod"}, "a.tf")))
    assert outcome.blocked is None
    assert results(outcome.body) == [
        '[gatehouse: content of infra/prod withheld by path rule "prod" (block)]'
    ]


def test_long_content_lines_are_still_checked() -> None:
    line = f"{ROOT}/secrets/prod.env:1:" + "x" * 10_000
    _, outcome = run(conversation(("Grep", {"pattern": "x", "output_mode": "content"}, line)))
    assert results(outcome.body) == [
        '[gatehouse: secrets/prod.env withheld by path rule "secrets" (redact)]'
    ]


def test_a_reused_tool_use_id_with_other_content_is_checked_again() -> None:
    chosen = rules()
    clean = conversation(("Grep", {"pattern": "K", "output_mode": "content"}, f"{ROOT}/a.py:1:K"))
    _, first = run(clean, chosen)
    assert first.applied == ()
    leaked = conversation(
        ("Grep", {"pattern": "K", "output_mode": "content"}, f"{ROOT}/secrets/x:1:{SECRET}")
    )
    _, second = run(leaked, chosen)
    assert SECRET.encode() not in second.body
