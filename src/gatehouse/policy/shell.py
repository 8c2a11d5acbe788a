"""Which files a shell command reads, best effort: ``cat a``, ``head -n 5 b``, ``< c``.

Pure.  Path rules (policy/paths.py) use it on Claude Code's ``Bash`` tool: the
command is tokenised with `shlex`, split into simple commands at ``|``, ``&&``,
``;``…, and the operands of commands that print files (``cat``, ``head``,
``tail``, ``less``, ``grep``, ``sed``, ``awk``…) are taken as paths; ``cd`` is
followed.  Variables, globbing, ``$(…)`` and scripts are not interpreted.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Sequence

_READERS = frozenset(
    {"cat", "head", "tail", "less", "more", "tac", "nl", "bat", "strings", "xxd", "od"}
    | {"hexdump", "base64", "sort", "uniq", "cut", "diff", "grep", "egrep", "fgrep", "rg"}
    | {"sed", "awk", "gawk", "jq", "yq"}
)
_SCRIPT_FIRST = frozenset({"grep", "egrep", "fgrep", "rg", "sed", "awk", "gawk", "jq", "yq"})
_SEARCHERS = frozenset({"grep", "egrep", "fgrep", "rg"})
_GREP_VALUED = frozenset({"-e", "-f", "-A", "-B", "-C", "-m", "-g", "-t", "--max-count"})
# Options that take the next word as their value, per command.
_VALUED = {
    "head": frozenset({"-n", "-c"}),
    "tail": frozenset({"-n", "-c"}),
    "sed": frozenset({"-e", "-f"}),
    "awk": frozenset({"-f", "-v", "-F"}),
    "gawk": frozenset({"-f", "-v", "-F"}),
    **dict.fromkeys(("grep", "egrep", "fgrep", "rg"), _GREP_VALUED),
}
_SEPARATORS = frozenset({"|", "||", "&&", ";", "&", "|&", "(", ")", ";;"})
_WRAPPERS = frozenset({"sudo", "env", "command", "time", "nice", "xargs"})


def bash_paths(command: str) -> tuple[list[str], bool]:
    """Files a shell command reads (``cat a``, ``head -n 5 b``, ``< c``) and whether it searches.

    Best effort: literal paths only (no variables, no globbing), ``cd`` followed.
    """
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:
        tokens = command.split()
    paths: list[str] = []
    searched = False
    cwd = ""
    simple: list[str] = []
    for token in [*tokens, ";"]:
        if token not in _SEPARATORS:
            simple.append(token)
            continue
        argv, redirected = _redirections(simple)
        paths.extend(posixpath.join(cwd, p) if cwd else p for p in redirected)
        while argv and ("=" in argv[0] or argv[0] in _WRAPPERS):
            argv = argv[1:]
        if argv:
            name = posixpath.basename(argv[0])
            if name == "cd" and len(argv) > 1:
                cwd = posixpath.join(cwd, argv[1]) if cwd else argv[1]
            elif name in _READERS:
                searched = searched or name in _SEARCHERS
                paths.extend(posixpath.join(cwd, p) if cwd else p for p in _operands(name, argv))
        simple = []
    return paths, searched


def _redirections(words: Sequence[str]) -> tuple[list[str], list[str]]:
    argv: list[str] = []
    inputs: list[str] = []
    skip = False
    for i, word in enumerate(words):
        if skip:
            skip = False
            continue
        if word in {"<", "<<<"}:
            if word == "<" and i + 1 < len(words):
                inputs.append(words[i + 1])
            skip = True
        elif word and set(word) <= set("<>&") and word not in {"&"}:
            skip = True  # > out, >> out, >& 2, &> out
        elif word.isdigit() and i + 1 < len(words) and words[i + 1].startswith(">"):
            continue  # the 2 of 2>&1
        else:
            argv.append(word)
    return argv, inputs


def _operands(name: str, argv: Sequence[str]) -> list[str]:
    operands: list[str] = []
    script_given = False
    skip = False
    for word in argv[1:]:
        if skip:
            skip = False
            continue
        if word.startswith("-") and word != "-":
            if word in {"-e", "-f"} and name in _SCRIPT_FIRST:
                script_given = True
            skip = word in _VALUED.get(name, ())
            continue
        operands.append(word)
    if name in _SCRIPT_FIRST and not script_given and operands:
        operands = operands[1:]
    return operands
