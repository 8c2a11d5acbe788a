import orjson
import pytest

from gatehouse.policy.repos import normalize_repository
from gatehouse.proxy.attribution import (
    attribute,
    find_repository,
    find_session_id,
    parse_user_agent,
)

SESSION = "3f1a9693-c05d-4e46-aace-ebf195940bc4"


def test_session_from_header_wins() -> None:
    body = {"metadata": {"user_id": orjson.dumps({"session_id": "other"}).decode()}}
    assert find_session_id({"x-claude-code-session-id": SESSION}, body) == SESSION


def test_session_from_json_user_id() -> None:
    user_id = orjson.dumps({"device_id": "ab", "account_uuid": "", "session_id": SESSION})
    assert find_session_id({}, {"metadata": {"user_id": user_id.decode()}}) == SESSION


def test_session_from_legacy_user_id() -> None:
    user_id = f"user_{'a' * 64}_account__session_{SESSION}"
    assert find_session_id({}, {"metadata": {"user_id": user_id}}) == SESSION


@pytest.mark.parametrize("metadata", [None, {}, {"user_id": 3}, {"user_id": "{not json"}])
def test_session_absent_or_malformed(metadata: object) -> None:
    assert find_session_id({}, {"metadata": metadata}) == ""


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        ("claude-cli/2.1.332 (external, sdk-cli)", ("claude-cli", "2.1.332")),
        ("Anthropic/Python 0.40.0", ("Anthropic/Python", "0.40.0")),
        ("curl/8.1.2", ("curl", "8.1.2")),
        ("", ("", "")),
    ],
)
def test_user_agent(agent: str, expected: tuple[str, str]) -> None:
    assert parse_user_agent(agent) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("git@github.com:acme/payments.git", "github.com/acme/payments"),
        ("https://github.com/acme/payments.git", "github.com/acme/payments"),
        ("https://user:tok@gitlab.example.com/acme/payments/", "gitlab.example.com/acme/payments"),
        ("github.com/acme/payments", "github.com/acme/payments"),
        ("https://GitHub.com/Acme/Payments", "github.com/Acme/Payments"),
    ],
)
def test_normalize_repository(value: str, expected: str) -> None:
    assert normalize_repository(value) == expected


def _safeguards(host: str, remote: str) -> list[object]:
    origin = {"host": host, "remote": remote}
    return [{"classifier_context": {"git_state": {"visibility": {"origin": origin}}}}]


def test_repository_sources_in_order_of_trust() -> None:
    env = "# Environment\n - Primary working directory: /home/dev/repo\n - Platform: linux"
    body = {
        "safeguards": _safeguards("github.com", "acme/payments-service"),
        "messages": [{"role": "system", "content": [{"type": "text", "text": env}]}],
    }
    header = {"x-gatehouse-repo": "https://github.com/acme/declared.git"}
    assert find_repository(header, body) == ("github.com/acme/declared", "header")
    assert find_repository({}, body) == ("github.com/acme/payments-service", "safeguards")
    del body["safeguards"]
    assert find_repository({}, body) == ("/home/dev/repo", "working_directory")


def test_working_directory_in_system_prompt_or_first_user_message() -> None:
    line = "Primary working directory: /src/app\n"
    assert find_repository({}, {"system": line, "messages": []})[0] == "/src/app"
    first_user = {"role": "user", "content": [{"type": "text", "text": line}]}
    assert find_repository({}, {"messages": [first_user]})[0] == "/src/app"
    # A later user message is the developer's own words, not Claude Code's context.
    later = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}, first_user]
    assert find_repository({}, {"messages": later}) == ("", "")


def test_attribute_combines_everything() -> None:
    headers = {
        "user-agent": "claude-cli/2.1.332 (external, cli)",
        "x-claude-code-session-id": SESSION,
        "x-claude-code-request-class": "main",
    }
    who = attribute(headers, {"messages": [], "safeguards": "garbage"})
    assert (who.client, who.client_version, who.session_id) == ("claude-cli", "2.1.332", SESSION)
    assert who.request_class == "main"
    assert who.repository == ""
