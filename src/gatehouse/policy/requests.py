"""Self-serve repository access: what `gatehouse repos` and the admin API both call.

A developer asks for a repository (`request_access`); it stays pending until the
repository's data-classification owner decides it.  The owner is the
``security`` role, or a member of the IdP group the policy names for the
repository or its organisation (``Policy.owners``, the longest matching
prefix).  Approval (`approve`) writes the repository's rule — classification
and path rules — into the policy document through `PolicyStore.change`, so it
lands in the policy history beside file and API changes; denial (`deny`) only
records the decision.  Every step is an event (``repo_access_requested``,
``repo_access_approved``, ``repo_access_denied``) with who, when and why, and
the developer reads the outcome with `status`.

This is an I/O service module (like `gatehouse.ledger.budgeting`): the
decisions it records are read by the pure `decide()` from the policy snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import yaml

from gatehouse.errors import InvalidRequest, NotFound, PermissionDenied
from gatehouse.events import Event
from gatehouse.identity.principal import Principal
from gatehouse.identity.roles import SECURITY
from gatehouse.policy.document import (
    CLASSIFICATIONS,
    PATH_ACTIONS,
    PathRule,
    Policy,
    PolicyError,
    RepoRule,
    check_glob,
)
from gatehouse.policy.repos import looks_like_repository, repository_key
from gatehouse.store import identity as identity_store
from gatehouse.store.db import Database
from gatehouse.store.errors import StoreConflict
from gatehouse.store.policy import PolicyStore
from gatehouse.store.repo_requests import (
    APPROVED,
    DENIED,
    PENDING,
    STATUSES,
    WITHDRAWN,
    RepoRequest,
    RepoRequestStore,
)

REQUESTED, APPROVED_EVENT, DENIED_EVENT = (
    "repo_access_requested",
    "repo_access_approved",
    "repo_access_denied",
)
MAX_REASON = 2000


def repository_name(value: str) -> str:
    """The repository as policies key it (``host/owner/name``), else `InvalidRequest`."""
    name = repository_key(value)
    if not looks_like_repository(name):
        raise InvalidRequest(
            f"{value.strip()!r} is not a repository: name it as host/owner/name "
            "(github.com/acme/payments) or by its git remote"
        )
    return name


def parse_paths(text: str, *, source: str = "paths file") -> tuple[dict[str, str], ...]:
    """Path rules from YAML or JSON: a list of ``{glob, action, name}`` (action redact|block).

    ``name`` defaults to the glob.  `InvalidRequest` names the item that is wrong.
    """
    try:
        data = yaml.safe_load(text) if text.strip() else []
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InvalidRequest(f"{source}: not YAML or JSON{where}") from None
    if isinstance(data, dict) and "paths" in data:
        data = data["paths"]
    return check_paths(data, source=source)


def check_paths(data: Any, *, source: str = "paths") -> tuple[dict[str, str], ...]:
    """Validated path rules from parsed data: a list of ``{glob, action, name}``."""
    if not isinstance(data, list):
        raise InvalidRequest(f"{source}: expected a list of {{glob, action, name}}")
    rules: list[dict[str, str]] = []
    for number, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise InvalidRequest(f"{source}: item {number} is not a mapping of glob, action, name")
        unknown = set(item) - {"glob", "action", "name"}
        glob, action = item.get("glob"), item.get("action")
        name = item.get("name") or glob  # the marker names the glob when the rule has no name
        if unknown:
            raise InvalidRequest(f"{source}: item {number} has unknown keys {sorted(unknown)}")
        if not isinstance(glob, str) or not glob.strip():
            raise InvalidRequest(f"{source}: item {number} needs a glob (such as **/*.pem)")
        try:
            check_glob(glob.strip())
        except PolicyError as exc:
            raise InvalidRequest(f"{source}: item {number}: {exc.message}") from None
        if action not in PATH_ACTIONS:
            raise InvalidRequest(
                f"{source}: item {number} ({glob}): action must be redact or block, not {action!r}"
            )
        if not isinstance(name, str) or not name.strip():
            raise InvalidRequest(f"{source}: item {number} ({glob}): name must be text")
        rules.append({"glob": glob.strip(), "action": action, "name": name.strip()})
    return tuple(rules)


async def check_owner(db: Database, policy: Policy, caller: Principal, repository: str) -> None:
    """Return if ``caller`` may decide on ``repository``; `PermissionDenied` saying who may."""
    if SECURITY in caller.roles:
        return
    group = policy.owner_of(repository)
    if group is None:
        raise PermissionDenied(
            f"{caller.email} may not decide access to {repository}: no owner group is set for "
            "it or its organisation, so only the security role may"
        )
    groups = await identity_store.groups_of(db, caller.email)
    if group.casefold() in {g.casefold() for g in groups}:
        return
    raise PermissionDenied(
        f"{caller.email} may not decide access to {repository}: its data-classification "
        f"owner is the IdP group {group} (or the security role)"
    )


async def request_access(
    db: Database, store: PolicyStore, caller: Principal, repository: str, reason: str
) -> RepoRequest:
    """Ask for ``repository`` on the allow-list; pending until its owner decides.

    `StoreConflict` (409) when the repository is already allowed or a request
    for it is already pending; the message says which and since when.
    """
    name = repository_name(repository)
    reason = _reason(reason, "a request")
    _, policy = await store.current()
    rule = policy.rule_for(name)
    if rule is not None:
        raise StoreConflict(
            f"{name} is already allowed ({rule.classification}, approved by {rule.approved_by}"
            f" on {_day(rule.approved_at)}): nothing to request"
        )
    wanted = RepoRequest(repository=name, requested_by=caller.email, reason=reason)
    stored = await RepoRequestStore(db).add(wanted)
    if stored.id != wanted.id:
        raise StoreConflict(
            f"{name} was already requested by {stored.requested_by} on {_day(stored.created_at)} "
            f"(request {stored.id}); it is pending with its classification owner"
        )
    await db.insert_events([_event(REQUESTED, stored, f"{caller.email} asked for {name}")])
    return stored


async def approve(
    db: Database,
    store: PolicyStore,
    caller: Principal,
    target: str,
    *,
    classification: str,
    paths: Sequence[Mapping[str, str]] = (),
    reason: str = "",
    source: str = "api",
    check_roles: bool = True,
) -> RepoRequest:
    """Allow a repository with a classification and path rules, deciding its pending request.

    ``target`` is a request id or a repository; a repository nobody asked for may
    be allowed too (recorded as a request by the approver).  The rule lands in
    the policy through `PolicyStore.change` (history: who, why, ``source``).
    ``check_roles`` false is the operator at the database (the CLI): who is
    recorded, roles are not checked.
    """
    if classification not in CLASSIFICATIONS:
        raise InvalidRequest(
            f"classification must be one of {', '.join(CLASSIFICATIONS)}, not {classification!r}"
        )
    rules = check_paths([dict(p) for p in paths])
    requests = RepoRequestStore(db)
    repository, request = await _find_pending(requests, target)
    if check_roles:
        await check_owner(db, (await store.current())[1], caller, repository)
    if request is None:  # nobody asked: recorded as the approver's own request
        request = await requests.add(
            RepoRequest(repository, caller.email, reason.strip() or "allowed without a request")
        )
    now = float(int(time.time()))  # whole seconds, as the policy's YAML export writes them
    decided = replace(
        request,
        status=APPROVED,
        decided_by=caller.email,
        decided_at=now,
        decision_reason=reason.strip(),
        classification=classification,
        paths=rules,
    )
    if not await requests.decide(decided):
        raise StoreConflict(f"request {request.id} was decided by someone else meanwhile")
    rule = RepoRule(
        classification=classification,
        paths=tuple(PathRule(glob=r["glob"], action=r["action"], name=r["name"]) for r in rules),
        approved_by=caller.email,
        approved_at=now,
        reason=reason.strip() or request.reason,
    )

    def allow(policy: Policy) -> Policy:
        # One entry per repository, whatever spelling an earlier rule used.
        kept = {
            name: old
            for name, old in policy.repositories.items()
            if repository_key(name) != request.repository
        }
        return policy.replace(repositories={**kept, request.repository: rule})

    why = f"allow {request.repository} ({classification}) for {request.requested_by}" + (
        f": {reason.strip()}" if reason.strip() else ""
    )
    try:
        await store.change(allow, author=caller.email, reason=why, source=source)
    except BaseException:
        await requests.reopen(request.id, APPROVED)
        raise
    subject = f"{caller.email} allowed {request.repository} ({classification})"
    await db.insert_events([_event(APPROVED_EVENT, decided, subject)])
    return decided


async def deny(
    db: Database,
    store: PolicyStore,
    caller: Principal,
    target: str,
    *,
    reason: str,
    check_roles: bool = True,
) -> RepoRequest:
    """Refuse a pending request, with a reason the developer sees in `status`."""
    reason = _reason(reason, "a denial")
    requests = RepoRequestStore(db)
    request = await _pending(requests, target)
    if check_roles:
        await check_owner(db, (await store.current())[1], caller, request.repository)
    decided = replace(
        request,
        status=DENIED,
        decided_by=caller.email,
        decided_at=time.time(),
        decision_reason=reason,
    )
    if not await requests.decide(decided):
        raise StoreConflict(f"request {request.id} was decided by someone else meanwhile")
    subject = f"{caller.email} denied {request.repository} to {request.requested_by}"
    await db.insert_events([_event(DENIED_EVENT, decided, subject)])
    return decided


async def withdraw(db: Database, caller: Principal, request_id: str) -> RepoRequest:
    """Take back one's own pending request (security may withdraw anyone's)."""
    requests = RepoRequestStore(db)
    request = await _pending(requests, request_id)
    if request.requested_by != caller.email and SECURITY not in caller.roles:
        raise PermissionDenied(
            f"{caller.email} may not withdraw request {request.id}: it is {request.requested_by}'s"
        )
    withdrawn = replace(
        request,
        status=WITHDRAWN,
        decided_by=caller.email,
        decided_at=time.time(),
        decision_reason="withdrawn",
    )
    if not await requests.decide(withdrawn):
        raise StoreConflict(f"request {request.id} was decided by someone else meanwhile")
    return withdrawn


async def list_requests(
    db: Database, *, status: str | None = None, requested_by: str | None = None
) -> list[RepoRequest]:
    """Requests newest first, optionally of one status (pending, approved, …) or developer."""
    if status is not None and status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
    return await RepoRequestStore(db).find(status=status, requested_by=requested_by)


async def status(db: Database, developer: str) -> list[RepoRequest]:
    """A developer's requests and their outcomes, newest first."""
    return await RepoRequestStore(db).find(requested_by=developer.strip())


# -- helpers ------------------------------------------------------------------------


async def _pending(requests: RepoRequestStore, target: str) -> RepoRequest:
    """The pending request ``target`` names (an id or a repository); `NotFound` if none."""
    name, found = await _find_pending(requests, target)
    if found is None:
        raise NotFound(f"no pending request for {name}")
    return found


async def _find_pending(requests: RepoRequestStore, target: str) -> tuple[str, RepoRequest | None]:
    """The repository ``target`` names (a request id or a repository) and its pending request."""
    target = target.strip()
    if "/" not in target:
        found = await requests.get(target)
        if found is None:
            raise NotFound(f"no repository request {target!r}")
        if found.status != PENDING:
            raise StoreConflict(
                f"request {found.id} for {found.repository} was already {found.status} "
                f"by {found.decided_by}"
            )
        return found.repository, found
    name = repository_name(target)
    return name, await requests.pending_for(name)


def _reason(reason: str, what: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidRequest(f"{what} needs a reason: it is kept with who made it")
    if len(reason) > MAX_REASON:
        raise InvalidRequest(f"a reason is at most {MAX_REASON} characters")
    return reason


def _event(kind: str, request: RepoRequest, subject: str) -> Event:
    detail: dict[str, Any] = {"request_id": request.id, "reason": request.reason}
    if request.status != PENDING:
        detail |= {
            "decided_by": request.decided_by,
            "decision_reason": request.decision_reason,
            "classification": request.classification,
            "paths": [dict(p) for p in request.paths],
        }
    return Event(
        kind=kind,
        subject=subject,
        developer=request.requested_by,
        repository=request.repository,
        detail=detail,
    )


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))
