"""`gatehouse setup claude-code`: the settings that point Claude Code at Gatehouse.

Three shapes of the same facts (docs/claude-code.md explains each):

* shell lines for one developer (the default),
* a ``~/.claude/settings.json`` file for one developer (``--format settings``),
* the managed-settings file a platform team pushes to every laptop (``--managed``),
  which overrides what developers set themselves.

Only the settings go to stdout, so the output can be piped into a file or
``eval``-ed; advice goes to stderr.
"""

from __future__ import annotations

import enum
import shlex
import sys
from typing import Annotated
from urllib.parse import urlsplit

import orjson
import typer
from rich.console import Console

app = typer.Typer(
    help="Print client settings that point a tool at Gatehouse.", no_args_is_help=True
)
err = Console(stderr=True)

MANAGED_SETTINGS_PATHS = {
    "Linux / WSL": "/etc/claude-code/managed-settings.json",
    "macOS": "/Library/Application Support/ClaudeCode/managed-settings.json",
    "Windows": r"C:\Program Files\ClaudeCode\managed-settings.json",
}
KEY_PLACEHOLDER = "<your Gatehouse key: gatehouse keys create --user YOU>"


class Format(enum.StrEnum):
    SHELL = "shell"
    SETTINGS = "settings"


def client_env(gateway: str, *, repo: str = "", hint_headers: bool = True) -> dict[str, str]:
    """The environment Claude Code needs behind Gatehouse (no credential in it)."""
    env = {
        "ANTHROPIC_BASE_URL": gateway,
        # Closed networks: no telemetry, update checks, or plugin-marketplace clones.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
    }
    if hint_headers:
        # Undocumented: request-class and prompt-id headers Gatehouse records.
        env["CLAUDE_CODE_GATEWAY_HINT_HEADERS"] = "1"
    if repo:
        env["ANTHROPIC_CUSTOM_HEADERS"] = f"X-Gatehouse-Repo: {repo}"
    return env


def settings_document(
    gateway: str,
    *,
    key_helper: str = "",
    key: str = "",
    repo: str = "",
    hint_headers: bool = True,
) -> dict[str, object]:
    """A Claude Code settings file (user or managed): ``env`` plus the credential source."""
    env = client_env(gateway, repo=repo, hint_headers=hint_headers)
    if key:
        env["ANTHROPIC_AUTH_TOKEN"] = key
    document: dict[str, object] = {"env": env}
    if key_helper:
        document["apiKeyHelper"] = key_helper
    # The WebFetch tool's domain check would otherwise call api.anthropic.com directly.
    document["skipWebFetchPreflight"] = True
    return document


def shell_lines(
    gateway: str, *, key: str = "", key_helper: str = "", repo: str = "", hint_headers: bool = True
) -> list[str]:
    env = client_env(gateway, repo=repo, hint_headers=hint_headers)
    lines = [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    if key:
        lines.insert(1, f"export ANTHROPIC_AUTH_TOKEN={shlex.quote(key)}")
    elif key_helper:
        lines.insert(1, "# apiKeyHelper cannot be set from the shell: use --format settings")
    else:
        lines.insert(1, f"# export ANTHROPIC_AUTH_TOKEN={KEY_PLACEHOLDER}")
    return lines


def normalize_gateway(url: str) -> str:
    """``https://gw.corp/`` → ``https://gw.corp``; refuse what Claude Code could not use."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise typer.BadParameter(f"{url!r} is not an http(s) URL, such as https://gatehouse.corp")
    if parts.query or parts.fragment:
        raise typer.BadParameter("the gateway URL must not carry a query or fragment")
    return f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"


@app.command("claude-code")
def claude_code(
    gateway: Annotated[
        str, typer.Option(help="Gatehouse's base URL as developers reach it.", show_default=False)
    ],
    managed: Annotated[
        bool,
        typer.Option(help="Print the managed-settings.json a platform team pushes to laptops."),
    ] = False,
    output_format: Annotated[
        Format, typer.Option("--format", help="shell lines, or a ~/.claude/settings.json file.")
    ] = Format.SHELL,
    key: Annotated[
        str, typer.Option(help="The developer's own Gatehouse key (never with --managed).")
    ] = "",
    key_helper: Annotated[
        str, typer.Option(help="apiKeyHelper: a command that prints the developer's key.")
    ] = "",
    repo: Annotated[
        str, typer.Option(help="Tag usage with this repository (X-Gatehouse-Repo header).")
    ] = "",
    hint_headers: Annotated[
        bool, typer.Option(help="Ask Claude Code for its request-class headers.")
    ] = True,
) -> None:
    """Print the settings that point Claude Code at Gatehouse."""
    url = normalize_gateway(gateway)
    if key and key_helper:
        raise typer.BadParameter("give --key or --key-helper, not both")
    if managed:
        if key:
            raise typer.BadParameter(
                "a key in managed settings would be shared by every developer; "
                "use --key-helper, or let developers set ANTHROPIC_AUTH_TOKEN"
            )
        if repo:
            raise typer.BadParameter(
                "--repo is per repository; it does not belong in managed settings"
            )
        document = settings_document(url, key_helper=key_helper, hint_headers=hint_headers)
        _print_json(document)
        where = "\n".join(
            f"  {os_name}: {path}" for os_name, path in MANAGED_SETTINGS_PATHS.items()
        )
        err.print(
            f"Install as managed-settings.json (it overrides developers' own settings):\n{where}"
        )
        if not key_helper:
            err.print(
                "Developers still need their own key: ANTHROPIC_AUTH_TOKEN in their shell, "
                "or an apiKeyHelper (--key-helper)."
            )
        return
    if output_format is Format.SETTINGS:
        _print_json(
            settings_document(
                url, key=key, key_helper=key_helper, repo=repo, hint_headers=hint_headers
            )
        )
        err.print("Save as ~/.claude/settings.json (or merge its keys into the existing file).")
        return
    lines = shell_lines(url, key=key, key_helper=key_helper, repo=repo, hint_headers=hint_headers)
    sys.stdout.write("\n".join(lines) + "\n")


def _print_json(document: dict[str, object]) -> None:
    sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
