"""Who, where and what a request is for: session, client, request class, repository.

Pure functions over the request headers and the parsed body.  Claude Code puts
these facts in different places depending on its version and mode (see
docs/architecture.md); each function tries the sources in order of trust and
says which one answered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gatehouse import claude_code
from gatehouse.policy.repo_claims import claims_of

# "claude-cli/2.1.332 (external, cli)", "curl/8.1.2", or the SDKs' "Anthropic/Python 0.40.0".
_UA = re.compile(r"^(\S+?)[/ ]v?(\d[^\s(;]*)")


@dataclass(frozen=True, slots=True)
class Attribution:
    session_id: str = ""
    client: str = ""
    client_version: str = ""
    request_class: str = ""
    repository: str = ""
    repository_source: str = ""


def attribute(headers: Mapping[str, str], body: Mapping[str, Any]) -> Attribution:
    """Attribute one request; ``headers`` has lower-case names."""
    client, version = parse_user_agent(headers.get("user-agent", ""))
    repository, source = find_repository(headers, body)
    return Attribution(
        session_id=find_session_id(headers, body),
        client=client,
        client_version=version,
        request_class=headers.get("x-claude-code-request-class", ""),
        repository=repository,
        repository_source=source,
    )


def find_session_id(headers: Mapping[str, str], body: Mapping[str, Any]) -> str:
    return claude_code.session_id(headers.get(claude_code.SESSION_HEADER), body)


def parse_user_agent(user_agent: str) -> tuple[str, str]:
    """``claude-cli/2.1.332 (external, sdk-cli)`` → ``("claude-cli", "2.1.332")``."""
    match = _UA.match(user_agent)
    if not match:
        return (user_agent.split(" ", 1)[0][:64], "")
    return match.group(1), match.group(2)


def find_repository(headers: Mapping[str, str], body: Mapping[str, Any]) -> tuple[str, str]:
    """The repository and the source that named it: header, safeguards or working directory.

    The most trusted claim of `gatehouse.policy.repo_claims` (which also sees a
    token's claim, the disagreements and the session's memory).
    """
    claims = claims_of("", headers, body)
    return (claims[0].value, claims[0].source) if claims else ("", "")
