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

_WORKDIR = re.compile(r"Primary working directory: *([^\n\r]+)")
# "claude-cli/2.1.332 (external, cli)", "curl/8.1.2", or the SDKs' "Anthropic/Python 0.40.0".
_UA = re.compile(r"^(\S+?)[/ ]v?(\d[^\s(;]*)")
_SCP_REMOTE = re.compile(r"^[\w.-]+@([\w.-]+):(.+)$")

REPO_HEADER = "x-gatehouse-repo"


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
    """The repository and the source that named it: header, safeguards or working directory."""
    declared = headers.get(REPO_HEADER, "").strip()
    if declared:
        return normalize_repository(declared), "header"
    origin = _safeguards_origin(body.get("safeguards"))
    if origin:
        return origin, "safeguards"
    workdir = _working_directory(body)
    if workdir:
        return workdir, "working_directory"
    return "", ""


def normalize_repository(value: str) -> str:
    """``git@github.com:acme/pay.git`` or ``https://github.com/acme/pay`` → ``github.com/acme/pay``.

    Anything else is kept as given, minus a trailing ``.git`` and slashes.
    """
    value = value.strip()
    scp = _SCP_REMOTE.match(value)
    if scp:
        value = f"{scp.group(1)}/{scp.group(2)}"
    elif "://" in value:
        value = value.split("://", 1)[1]
        value = value.rsplit("@", 1)[-1] if "@" in value.split("/", 1)[0] else value
    value = value.strip("/")
    if value.endswith(".git"):
        value = value[:-4]
    return value


def _safeguards_origin(safeguards: Any) -> str:
    if not isinstance(safeguards, list):
        return ""
    for item in safeguards:
        try:
            origin = item["classifier_context"]["git_state"]["visibility"]["origin"]
            host, remote = origin["host"], origin["remote"]
        except (KeyError, TypeError):
            continue
        if isinstance(host, str) and isinstance(remote, str) and host and remote:
            return normalize_repository(f"{host}/{remote}")
    return ""


def _working_directory(body: Mapping[str, Any]) -> str:
    """The "Primary working directory" line Claude Code writes into its context.

    2.1.112 puts it in the system prompt; 2.1.332 in a ``role: "system"``
    message, or in the first user message for some models.
    """
    for text in _context_texts(body):
        if "Primary working directory" in text:
            match = _WORKDIR.search(text)
            if match:
                return match.group(1).strip()
    return ""


def _context_texts(body: Mapping[str, Any]) -> list[str]:
    texts: list[str] = []
    _collect_text(body.get("system"), texts)
    messages = body.get("messages")
    if isinstance(messages, list):
        seen_user = False
        for message in messages:
            if not isinstance(message, dict):
                continue
            role = message.get("role")
            if role == "system" or (role == "user" and not seen_user):
                _collect_text(message.get("content"), texts)
            seen_user = seen_user or role == "user"
    return texts


def _collect_text(content: Any, out: list[str]) -> None:
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for block in content:
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                out.append(block["text"])
