"""Which repository a request is for: every source's claim, one answer, session memory.

A request can name its repository in four places, in order of trust:

1. ``token`` — the signed ``repo`` claim of a key-helper access token;
2. ``header`` — ``X-Gatehouse-Repo`` (``ANTHROPIC_CUSTOM_HEADERS``);
3. ``safeguards`` — the git origin Claude Code reports in
   ``safeguards[].classifier_context.git_state.visibility.origin`` (interactive mode);
4. ``working_directory`` — the ``Primary working directory:`` line of Claude
   Code's context: a local path, not a remote, so it names a checkout rather
   than a repository and never contradicts a remote.

`resolve` reads them all: the most trusted wins, and remotes that disagree
with it are *conflicts* (a developer may lie in a header; the body says
otherwise).  `SessionRepositories` then holds a session to the first
repository it resolved: a request with no repository of its own (Claude
Code's background calls: titles, quota checks) inherits it, and a later
request naming another one is attributed to the session's repository and
reported.  The map is per process (bounded LRU); replicas each learn it.
"""

from __future__ import annotations

import posixpath
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gatehouse.events import Event
from gatehouse.policy.repos import normalize_repository

SOURCES = ("token", "header", "safeguards", "working_directory")
SESSION = "session"  # the source of an inherited repository
MISMATCH_EVENT = "repo_claim_mismatch"
REPO_HEADER = "x-gatehouse-repo"
_WORKDIR_MARK = "Primary working directory:"


@dataclass(frozen=True, slots=True)
class Claim:
    """One source's word on the repository, normalised (a working directory stays a path)."""

    source: str
    value: str

    @property
    def is_remote(self) -> bool:
        return self.source != "working_directory"


@dataclass(frozen=True, slots=True)
class RepositoryIdentity:
    """The repository a request is attributed to, and everything that was said about it.

    ``conflicts`` are the claims that disagree with ``repository`` (empty when all
    agree); ``root`` is the local checkout (git root, else working directory) that
    path rules make tool paths relative to.
    """

    repository: str = ""
    source: str = ""
    claims: tuple[Claim, ...] = ()
    conflicts: tuple[Claim, ...] = ()
    root: str = ""

    @property
    def is_remote(self) -> bool:
        return bool(self.repository) and self.source != "working_directory"


def claims_of(
    token_repository: str, headers: Mapping[str, str], body: Mapping[str, Any]
) -> tuple[Claim, ...]:
    """Every source's claim, most trusted first; ``headers`` has lower-case names."""
    found: list[Claim] = []
    if token_repository:
        found.append(Claim("token", normalize_repository(token_repository)))
    declared = headers.get(REPO_HEADER, "").strip()
    if declared:
        found.append(Claim("header", normalize_repository(declared)))
    origin = safeguards_origin(body.get("safeguards"))
    if origin:
        found.append(Claim("safeguards", origin))
    workdir = working_directory(body)
    if workdir:
        found.append(Claim("working_directory", workdir))
    return tuple(found)


def resolve(claims: tuple[Claim, ...], root: str = "") -> RepositoryIdentity:
    """The most trusted claim wins; remote claims that differ from it are conflicts."""
    if not claims:
        return RepositoryIdentity(root=root)
    best = claims[0]
    conflicts = tuple(
        c for c in claims[1:] if c.is_remote and best.is_remote and c.value != best.value
    )
    return RepositoryIdentity(best.value, best.source, claims, conflicts, root)


def identify(
    token_repository: str, headers: Mapping[str, str], body: Mapping[str, Any]
) -> RepositoryIdentity:
    """`claims_of` then `resolve`, with the checkout root path rules need."""
    return resolve(claims_of(token_repository, headers, body), checkout_root(body))


class SessionRepositories:
    """Session id → the repository it first resolved; bounded, least recently used out.

    ``settle`` is the one entry point: it returns the identity the request is
    attributed to.  Only remotes are held (a working directory names a checkout,
    not a repository, so it never binds a session); once held, a remote is
    never silently replaced.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._held: OrderedDict[str, RepositoryIdentity] = OrderedDict()
        self._reported: OrderedDict[tuple[str, str, tuple[Claim, ...]], None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._held)

    def get(self, session_id: str) -> RepositoryIdentity | None:
        return self._held.get(session_id)

    def settle(self, session_id: str, own: RepositoryIdentity) -> RepositoryIdentity:
        if not session_id:
            return own
        held = self._held.get(session_id)
        if held is None:
            if own.is_remote:
                self._remember(session_id, own)
            return own
        self._held.move_to_end(session_id)
        if not own.is_remote:
            # Background calls and path-only requests inherit what the session resolved.
            return replace(held, source=SESSION, claims=own.claims, conflicts=(), root=own.root)
        if own.repository == held.repository:
            return own
        # The session names another repository now: keep the first, report the change.
        changed = Claim(own.source, own.repository)
        return replace(
            held,
            source=SESSION,
            claims=own.claims,
            conflicts=(changed, *own.conflicts),
            root=own.root or held.root,
        )

    def first_report(self, session_id: str, identity: RepositoryIdentity) -> bool:
        """True the first time this session shows these conflicts (one event, not one a turn)."""
        if not session_id:
            return True
        key = (session_id, identity.repository, identity.conflicts)
        if key in self._reported:
            return False
        self._reported[key] = None
        while len(self._reported) > self.capacity:
            self._reported.popitem(last=False)
        return True

    def _remember(self, session_id: str, identity: RepositoryIdentity) -> None:
        self._held[session_id] = RepositoryIdentity(identity.repository, identity.source)
        self._held.move_to_end(session_id)
        while len(self._held) > self.capacity:
            self._held.popitem(last=False)


def mismatch_event(
    identity: RepositoryIdentity, *, developer: str, team: str, session_id: str
) -> Event | None:
    """A ``repo_claim_mismatch`` event when sources disagree, else ``None``."""
    if not identity.conflicts:
        return None
    disagreeing = ", ".join(f"{c.source} says {c.value}" for c in identity.conflicts)
    return Event(
        kind=MISMATCH_EVENT,
        subject=(
            f"request attributed to {identity.repository} ({identity.source}) but {disagreeing}"
        ),
        severity="warning",
        developer=developer,
        team=team,
        repository=identity.repository,
        session_id=session_id,
        detail={
            "attributed": identity.repository,
            "attributed_source": identity.source,
            "claims": [{"source": c.source, "value": c.value} for c in identity.claims],
            "conflicts": [{"source": c.source, "value": c.value} for c in identity.conflicts],
        },
    )


# -- where Claude Code says it -------------------------------------------------------


def safeguards_origin(safeguards: Any) -> str:
    """``host/remote`` of the first git origin in ``safeguards``, normalised, or ``""``."""
    for state in _git_states(safeguards):
        try:
            origin = state["visibility"]["origin"]
            host, remote = origin["host"], origin["remote"]
        except (KeyError, TypeError):
            continue
        if isinstance(host, str) and isinstance(remote, str) and host and remote:
            return normalize_repository(f"{host}/{remote}")
    return ""


def checkout_root(body: Mapping[str, Any]) -> str:
    """The local checkout: ``git_state.root`` from safeguards, else the working directory."""
    for state in _git_states(body.get("safeguards")):
        root = state.get("root")
        if isinstance(root, str) and root.startswith("/"):
            return posixpath.normpath(root)
    workdir = working_directory(body)
    return posixpath.normpath(workdir) if workdir.startswith("/") else ""


def working_directory(body: Mapping[str, Any]) -> str:
    """The ``Primary working directory`` line Claude Code writes into its context.

    2.1.112 puts it in the system prompt; 2.1.332 in a ``role: "system"``
    message, or in the first user message for some models.
    """
    for text in _context_texts(body):
        at = text.find(_WORKDIR_MARK)
        if at >= 0:
            line = text[at + len(_WORKDIR_MARK) :].split("\n", 1)[0].strip()
            if line:
                return line
    return ""


def _git_states(safeguards: Any) -> list[dict[str, Any]]:
    if not isinstance(safeguards, list):
        return []
    states = []
    for item in safeguards:
        context = item.get("classifier_context") if isinstance(item, dict) else None
        state = context.get("git_state") if isinstance(context, dict) else None
        if isinstance(state, dict):
            states.append(state)
    return states


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
