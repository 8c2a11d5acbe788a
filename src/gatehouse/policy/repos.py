"""Repository names as Gatehouse compares them: ``host/owner/name``, host lower-cased.

Pure and dependency-free, so attribution (what a request says), the policy
document (what security approved) and the CLI all name a repository the same way.
"""

from __future__ import annotations

import re

_SCP_REMOTE = re.compile(r"^[\w.-]+@([\w.-]+):(.+)$")


def normalize_repository(value: str) -> str:
    """``git@github.com:acme/pay.git`` or ``https://GitHub.com/acme/pay`` → ``github.com/acme/pay``.

    The host is lower-cased (host names are case-insensitive); anything else is
    kept as given, minus a trailing ``.git`` and slashes.
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
    host, sep, rest = value.partition("/")
    return host.lower() + sep + rest


def repository_key(value: str) -> str:
    """The key a repository is looked up by in a policy: normalised, then case-folded.

    GitHub and GitLab treat ``Acme/Payments`` and ``acme/payments`` as one
    repository; an allow-list must not be sidestepped by capitalisation.
    """
    return normalize_repository(value).lower()


def looks_like_repository(value: str) -> bool:
    """``host/owner/name`` (at least three non-empty segments, a dotted host)."""
    parts = value.split("/")
    return len(parts) >= 3 and all(parts) and "." in parts[0] and " " not in value
