"""The `gatehouse` executable: `key-helper` straight away, everything else via cli/main.py.

Claude Code runs `gatehouse key-helper` every few minutes and waits for it;
importing the whole CLI (server, database, Typer) first took over a second, so
that one sub-command is dispatched before any of it is imported.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["key-helper"]:
        from gatehouse.cli import keyhelper

        sys.exit(keyhelper.main(sys.argv[2:]))
    from gatehouse.cli.main import main as cli

    cli()
