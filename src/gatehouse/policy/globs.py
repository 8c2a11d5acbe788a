"""Path globs as security writes them (``**/*.pem``, ``secrets/**``), compiled to regexes.

The gitignore-style reading: ``*`` and ``?`` stay inside one path segment,
``**`` spans any number of segments (``**/x`` also matches ``x`` at the top),
``[...]`` is a character class.  A glob without a ``/`` matches the file name
at any depth (``*.pem`` is ``**/*.pem``).  Paths are compared with forward
slashes and without a leading ``./`` or ``/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


def glob_regex(glob: str) -> str:
    """The regex source (anchored by the caller) for one glob; raises ValueError if malformed."""
    glob = glob.strip().lstrip("/")
    if not glob:
        raise ValueError("a path glob cannot be empty")
    if "/" not in glob.rstrip("/"):
        glob = "**/" + glob
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 2)
            if end < 0:
                raise ValueError(f"unclosed [ in path glob {glob!r}")
            body = glob[i + 1 : end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(c))
            i += 1
    if glob.endswith("/"):
        out.append(".*")  # a directory glob covers everything under it
    return "".join(out)


def compile_globs(globs: Iterable[str]) -> re.Pattern[str] | None:
    """One regex matching any of ``globs`` (group ``g<i>`` names which); ``None`` for none."""
    parts = [f"(?P<g{i}>{glob_regex(g)})" for i, g in enumerate(globs)]
    if not parts:
        return None
    return re.compile("^(?:" + "|".join(parts) + ")$")


def clean_path(path: str) -> str:
    """``./a/b``, ``/a/b``, ``a\\b`` → ``a/b`` (what globs are matched against)."""
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.lstrip("/")
