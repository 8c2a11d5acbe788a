"""`gatehouse key-helper`: Claude Code's ``apiKeyHelper``.

Claude Code runs the helper at start, whenever its cached answer is older than
``CLAUDE_CODE_API_KEY_HELPER_TTL_MS`` (5 minutes by default) and after a 401.
The helper reads the stored login (cli/credstore.py), names the repository of
the working directory (``git remote get-url origin``; none is an empty claim),
asks ``POST <gateway>/auth/token`` for an access token and prints only that
token.  Anything else goes to stderr, with a non-zero exit; Claude Code shows
it to the developer.

It runs often, so it imports only the standard library: the `gatehouse`
launcher (cli/launcher.py) sends ``key-helper`` here before importing the rest
of the CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from gatehouse.cli import credstore

LOGIN_HINT = "run `gatehouse login --gateway URL` to sign in"
TIMEOUT_S = 15.0


class HelperError(Exception):
    """What the developer reads on stderr."""


def main(argv: list[str] | None = None) -> int:
    """Print an access token; return the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        sys.stdout.write(
            "usage: gatehouse key-helper\n\nPrint a short-lived Gatehouse access token for "
            "Claude Code's apiKeyHelper (needs `gatehouse login`).\n"
        )
        return 0
    try:
        token = fetch_token(repository(Path.cwd()))
    except HelperError as exc:
        sys.stderr.write(f"gatehouse key-helper: {exc}\n")
        return 1
    sys.stdout.write(token + "\n")
    return 0


def fetch_token(repo: str) -> str:
    """Trade the stored login for an access token naming ``repo``."""
    try:
        stored = credstore.load()
    except credstore.CredstoreError as exc:
        raise HelperError(f"{exc}; {LOGIN_HINT}") from None
    if stored is None:
        raise HelperError(f"not signed in to Gatehouse; {LOGIN_HINT}")
    url = stored.gateway_url + "/auth/token"
    request = urllib.request.Request(  # noqa: S310 - the gateway URL the developer logged in to
        url,
        data=json.dumps({"repository": repo}).encode(),
        headers={
            "authorization": f"Bearer {stored.secret}",
            "content-type": "application/json",
            "user-agent": "gatehouse-key-helper",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:  # an HTTPError holds the response's socket open
            raise HelperError(_refusal(exc)) from None
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HelperError(f"cannot reach Gatehouse at {stored.gateway_url}: {reason}") from None
    except ValueError:
        raise HelperError(f"{url} did not answer with JSON; is that a Gatehouse?") from None
    token = answer.get("access_token") if isinstance(answer, dict) else None
    if not isinstance(token, str) or not token:
        raise HelperError(f"{url} answered without an access token")
    return token


def repository(cwd: Path) -> str:
    """``origin``'s URL for the repository around ``cwd``; ``""`` when there is none."""
    try:
        done = subprocess.run(
            ["git", "remote", "get-url", "origin"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _refusal(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read())
    except (ValueError, OSError):
        body = None
    description = body.get("error_description") if isinstance(body, dict) else None
    if isinstance(description, str) and description:
        return f"Gatehouse refused: {description}"
    return f"Gatehouse answered {exc.code}; {LOGIN_HINT} if this persists"


if __name__ == "__main__":
    sys.exit(main())
