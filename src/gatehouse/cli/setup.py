"""`gatehouse setup claude-code`: the settings that point Claude Code at Gatehouse.

Three shapes of the same facts (docs/claude-code.md explains each):

* shell lines for one developer (the default with ``--gateway``),
* a ``~/.claude/settings.json`` file for one developer (``--format settings``),
* the managed-settings file a platform team pushes to every laptop (``--managed``),
  which overrides what developers set themselves.

Only the settings go to stdout, so the output can be piped into a file or
``eval``-ed; advice goes to stderr.

After `gatehouse login` (no ``--gateway``, or ``--install``) the command writes
the developer's ``~/.claude/settings.json`` itself: ``apiKeyHelper`` runs
`gatehouse key-helper` and ``env`` points at the gateway, merged into what the
file already holds; ``--print`` shows the result without writing.
"""

from __future__ import annotations

import enum
import os
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

import orjson
import typer
from rich.console import Console

from gatehouse.cli import credstore

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
# A static credential in settings.json outranks apiKeyHelper: installing the helper drops it.
_STATIC_CREDENTIALS = ("ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_API_KEY")


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
        str,
        typer.Option(
            help="Gatehouse's base URL as developers reach it; without it, the URL you "
            "logged in to, and the settings are installed.",
            show_default=False,
        ),
    ] = "",
    install: Annotated[
        bool,
        typer.Option(
            "--install",
            help="Write ~/.claude/settings.json (apiKeyHelper: gatehouse key-helper), merged "
            "into the existing file (the default without --gateway).",
        ),
    ] = False,
    print_only: Annotated[
        bool,
        typer.Option("--print", help="With --install: show the merged file, do not write it."),
    ] = False,
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
    """Print the settings that point Claude Code at Gatehouse, or install them after login."""
    if install or print_only or not gateway:
        if managed or key or repo or output_format is not Format.SHELL:
            raise typer.BadParameter(
                "installing writes your own ~/.claude/settings.json with the key helper; "
                "--managed, --key, --repo and --format go with --gateway alone"
            )
        install_settings(gateway, key_helper=key_helper, hint_headers=hint_headers, show=print_only)
        return
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


def install_settings(gateway: str, *, key_helper: str, hint_headers: bool, show: bool) -> None:
    """Merge the gateway and the key helper into the developer's Claude Code settings."""
    if not gateway:
        try:
            stored = credstore.load()
        except credstore.CredstoreError as exc:
            raise typer.BadParameter(str(exc)) from None
        if stored is None:
            raise typer.BadParameter(
                "not signed in: run `gatehouse login --gateway URL` first, or give --gateway"
            )
        gateway = stored.gateway_url
    url = normalize_gateway(gateway)
    path = claude_settings_path()
    current = read_settings(path)
    merged = merge_settings(current, url, key_helper or helper_command(), hint_headers=hint_headers)
    dropped = [n for n in _STATIC_CREDENTIALS if n in _env_of(current)]
    if show:
        _print_json(merged)
        err.print(f"Not written; without --print this goes to {path}.")
        return
    _write_atomically(path, orjson.dumps(merged, option=orjson.OPT_INDENT_2) + b"\n")
    err.print(f"Wrote {path}: Claude Code now asks `gatehouse key-helper` for its key.")
    if dropped:
        err.print(f"Removed {', '.join(dropped)} from its env: they would override the helper.")


def claude_settings_path() -> Path:
    """``~/.claude/settings.json`` (``$CLAUDE_CONFIG_DIR/settings.json`` when set)."""
    base = os.environ.get("CLAUDE_CONFIG_DIR") or str(Path.home() / ".claude")
    return Path(base) / "settings.json"


def read_settings(path: Path) -> dict[str, Any]:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return {}
    try:
        document = orjson.loads(text) if text.strip() else {}
    except orjson.JSONDecodeError as exc:
        raise typer.BadParameter(f"{path} is not valid JSON ({exc}); fix it first") from None
    if not isinstance(document, dict):
        raise typer.BadParameter(f"{path} is not a JSON object; fix it first")
    return document


def merge_settings(
    current: dict[str, Any], gateway: str, key_helper: str, *, hint_headers: bool = True
) -> dict[str, Any]:
    """``current`` with Gatehouse's env and apiKeyHelper set; every other key kept."""
    env = {k: v for k, v in _env_of(current).items() if k not in _STATIC_CREDENTIALS}
    env.update(client_env(gateway, hint_headers=hint_headers))
    merged = dict(current)
    merged["env"] = env
    merged["apiKeyHelper"] = key_helper
    merged["skipWebFetchPreflight"] = True
    return merged


def helper_command() -> str:
    """``/abs/path/gatehouse key-helper`` for the gatehouse being run now."""
    launched = Path(sys.argv[0])
    if launched.name == "gatehouse" and launched.is_file():
        return shlex.join([str(launched.absolute()), "key-helper"])
    return shlex.join([sys.executable, "-m", "gatehouse", "key-helper"])


def _env_of(document: dict[str, Any]) -> dict[str, Any]:
    env = document.get("env")
    return env if isinstance(env, dict) else {}


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".gatehouse-partial")
    partial.write_bytes(data)
    if path.exists():
        partial.chmod(path.stat().st_mode & 0o777)
    partial.replace(path)
