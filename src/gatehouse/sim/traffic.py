"""Claude Code–shaped traffic: request bodies and headers modelled on real captures.

Used by `gatehouse demo --replay`, the benchmarks and the tests.  The shape
follows Claude Code 2.1.332: a billing attribution line as ``system[0]``,
cache breakpoints, tool definitions, ``metadata.user_id`` as a JSON string, a
``role: "system"`` environment message and fields a gateway does not know.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import httpx
import orjson

CLAUDE_CODE_VERSION = "2.1.332"
BETAS = (
    "claude-code-20250219,interleaved-thinking-2025-05-14,context-management-2025-06-27,"
    "per-turn-control-2026-07-01,mid-conversation-tool-changes-2026-07-01,"
    "thinking-token-count-2026-05-13,advanced-tool-use-2025-11-20,effort-2025-11-24"
)
TOOLS = ("Agent", "Bash", "Edit", "Glob", "Grep", "Read", "Skill", "ToolSearch", "Write")
_WORDS = (
    "the function returns a value when the input is valid and raises otherwise so callers "
    "check the result before they use it in the next step of the pipeline"
).split(" ")


def _prose(rng: random.Random, size: int) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def _code(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    length = 0
    n = 0
    while length < size:
        n += 1
        line = f"    def step_{n}(self, value: int) -> int:  # {rng.choice(_WORDS)}\n"
        line += f"        return value * {rng.randint(2, 99)} + self.offset_{n % 7}\n"
        lines.append(line)
        length += len(line)
    return "class Pipeline:\n" + "".join(lines)


def claude_code_headers(session_id: str, key: str, *, repo: str | None = None) -> dict[str, str]:
    headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "user-agent": f"claude-cli/{CLAUDE_CODE_VERSION} (external, sdk-cli)",
        "x-claude-code-session-id": session_id,
        "x-stainless-lang": "js",
        "x-stainless-package-version": "0.128.0",
        "x-stainless-retry-count": "0",
        "x-stainless-timeout": "600",
        "anthropic-beta": BETAS,
        "anthropic-dangerous-direct-browser-access": "true",
        "anthropic-version": "2023-06-01",
        "x-app": "cli",
        "x-claude-code-request-class": "main",
        "authorization": f"Bearer {key}",
    }
    if repo:
        headers["x-gatehouse-repo"] = repo
    return headers


def claude_code_body(
    session_id: str,
    *,
    turns: int = 1,
    size: int = 100_000,
    model: str = "claude-opus-5-5",
    workdir: str = "/home/dev/acme/payments-service",
    seed: int = 0,
    marker: str = "",
    turn_bytes: int | None = None,
) -> dict[str, Any]:
    """A streaming request as Claude Code sends it, about ``size`` bytes of JSON.

    With ``turn_bytes`` each earlier turn has that size whatever ``turns`` is, so
    successive turns of one session (same ``seed``) share their prefix, as a real
    conversation does, and the upstream's prompt cache can read it.
    """
    rng = random.Random(seed)
    tools = [
        {
            "name": name,
            "description": _prose(rng, 1500),
            "input_schema": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": _prose(rng, 200)}},
                "required": ["command"],
            },
        }
        for name in TOOLS
    ]
    system_prompt = _prose(rng, 7000)  # before the turns, so every turn shares it
    messages: list[dict[str, Any]] = [
        {
            "role": "system",
            "content": [
                {
                    "type": "text",
                    "text": "# Environment\nYou have been invoked in the following environment: "
                    f"\n - Primary working directory: {workdir}\n - Is a git repository: true\n"
                    " - Platform: linux\n - Shell: bash\n",
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "text",
                    "text": "<system-reminder>\n# gitStatus\nCurrent branch: feature/demo\n"
                    "Main branch: main\nGit user: Dev\n</system-reminder>",
                },
                {"type": "text", "text": f"Refactor the pipeline, please. {marker}".strip()},
            ],
        },
    ]
    fixed = len(orjson.dumps(tools)) + 9000
    per_turn = turn_bytes or max(500, (size - fixed) // max(turns, 1) // 2)
    for turn in range(1, turns):
        tool_id = f"toolu_{seed:04d}{turn:04d}{rng.randrange(16**8):08x}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": _prose(rng, 200)},
                    {
                        "type": "tool_use",
                        "id": tool_id,
                        "name": "Read",
                        "input": {"file_path": f"{workdir}/src/pipeline_{turn}.py"},
                    },
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": tool_id,
                        "content": _code(rng, per_turn * 2 - 200),
                        "is_error": False,
                    }
                ],
            }
        )
    last = messages[-1]["content"][-1]
    last["cache_control"] = {"type": "ephemeral"}
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "system": [
            {
                "type": "text",
                "text": f"x-anthropic-billing-header: cc_version={CLAUDE_CODE_VERSION}.0b8; "
                "cc_entrypoint=sdk-cli;",
            },
            {
                "type": "text",
                "text": "You are a Claude agent, built on Anthropic's Claude Agent SDK.",
                "cache_control": {"type": "ephemeral"},
            },
            {"type": "text", "text": system_prompt, "cache_control": {"type": "ephemeral"}},
        ],
        "tools": tools,
        "metadata": {
            "user_id": orjson.dumps(
                {"device_id": "0" * 64, "account_uuid": "", "session_id": session_id}
            ).decode()
        },
        "max_tokens": 32000,
        "thinking": {"type": "adaptive", "display": "omitted"},
        "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        "output_config": {"effort": "medium"},
        "stream": True,
    }
    return body


# The repositories the demo replay works in (`gatehouse demo` approves them).
DEMO_REPOSITORIES = (
    "github.com/acme/payments-service",
    "github.com/acme/web",
    "github.com/acme/infra",
)


async def replay_sessions(base_url: str, key: str, *, sessions: int = 3, turns: int = 3) -> None:
    """Drive a few multi-turn sessions through a gateway, as the demo does."""
    repos = DEMO_REPOSITORIES
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        for n in range(sessions):
            session_id = str(uuid.UUID(int=random.Random(n).getrandbits(128)))
            for turn in range(1, turns + 1):
                body = claude_code_body(session_id, turns=turn, seed=n, turn_bytes=8_000)
                headers = claude_code_headers(session_id, key, repo=repos[n % len(repos)])
                async with client.stream(
                    "POST", "/v1/messages?beta=true", content=orjson.dumps(body), headers=headers
                ) as response:
                    async for _ in response.aiter_bytes():
                        pass
