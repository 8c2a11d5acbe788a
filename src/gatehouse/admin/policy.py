"""Admin routes for security's vetoes: repository requests, the policy, kill switches, models.

The same services as `gatehouse repos`, `gatehouse policy`, `gatehouse
killswitch` and `gatehouse models`, with the caller's roles enforced here (the
CLI only records who acted):

- repository requests: anyone asks for themselves; security and platform
  admins see every request, others their own; security or the repository's
  owner group (``owners`` in the policy) approves or denies;
- the policy document and its history: security and platform admins read it;
  applying a whole document is security's alone (it carries classifications,
  the vendor list and the kill switches);
- kill switches: security throws and lifts them; a platform admin may throw one
  only on a security person's instruction (``on_behalf_of``, recorded);
- models: platform admins propose, security alone approves or revokes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from gatehouse.admin.auth import Allow, Caller
from gatehouse.admin.backend import Backend
from gatehouse.errors import PermissionDenied
from gatehouse.identity.roles import PLATFORM_ADMIN, ROLES, SECURITY
from gatehouse.policy import requests, service
from gatehouse.policy.document import KillSwitch, dump_yaml, iso, load_yaml
from gatehouse.store import identity as identity_store
from gatehouse.store.policy import PolicyStore

EVERYONE = Allow(*ROLES)
SEES_ALL = (SECURITY, PLATFORM_ADMIN)
READERS = Allow(SECURITY, PLATFORM_ADMIN)
SECURITY_ONLY = Allow(SECURITY)
Target = Annotated[
    str, Path(description="a request id, or the repository (host/owner/name) it is for")
]


class AccessRequest(BaseModel):
    repository: str = Field(examples=["github.com/acme/payments"], max_length=500)
    reason: str = Field(min_length=1, max_length=2000)


class PathRuleTerms(BaseModel):
    glob: str = Field(examples=["secrets/**"], max_length=500)
    action: str = Field("redact", description="redact or block")
    name: str = Field("", max_length=200, description="shown in the marker; default the glob")


class Approval(BaseModel):
    classification: str = Field(description="public, internal, confidential or restricted")
    paths: list[PathRuleTerms] = Field(default_factory=list, max_length=1000)
    reason: str = Field("", max_length=2000)


class Denial(BaseModel):
    reason: str = Field(min_length=1, max_length=2000)


def repo_routes(backend: Backend) -> APIRouter:
    router = APIRouter(tags=["repositories"])

    @router.post("/v1/repos/requests")
    async def request_access(
        terms: AccessRequest, caller: Annotated[Caller, Depends(EVERYONE)]
    ) -> dict[str, Any]:
        """Ask for a repository on the allow-list, for yourself; pending until its owner decides."""
        db = backend.database
        made = await requests.request_access(
            db, PolicyStore(db, backend.redis_url), caller.principal, terms.repository, terms.reason
        )
        return made.to_json()

    @router.get("/v1/repos/requests")
    async def list_requests(
        caller: Annotated[Caller, Depends(EVERYONE)],
        status: Annotated[
            str | None, Query(description="pending, approved, denied or withdrawn")
        ] = None,
        developer: Annotated[str | None, Query(description="one developer's requests")] = None,
    ) -> list[dict[str, Any]]:
        """Requests newest first: every request for security and platform admins, else your own."""
        if not caller.has(*SEES_ALL):
            developer = caller.email
        found = await requests.list_requests(
            backend.database, status=status, requested_by=developer
        )
        return [item.to_json() for item in found]

    @router.post("/v1/repos/requests/{target:path}/approve")
    async def approve(
        target: Target, terms: Approval, caller: Annotated[Caller, Depends(EVERYONE)]
    ) -> dict[str, Any]:
        """Allow the repository with a classification and path rules (security or owner group)."""
        db = backend.database
        decided = await requests.approve(
            db,
            PolicyStore(db, backend.redis_url),
            caller.principal,
            target,
            classification=terms.classification,
            paths=[p.model_dump() for p in terms.paths],
            reason=terms.reason,
            source="api",
        )
        return decided.to_json()

    @router.post("/v1/repos/requests/{target:path}/deny")
    async def deny(
        target: Target, terms: Denial, caller: Annotated[Caller, Depends(EVERYONE)]
    ) -> dict[str, Any]:
        """Refuse a pending request with a reason the developer sees (security or owner group)."""
        db = backend.database
        decided = await requests.deny(
            db, PolicyStore(db, backend.redis_url), caller.principal, target, reason=terms.reason
        )
        return decided.to_json()

    @router.delete("/v1/repos/requests/{request_id}")
    async def withdraw(
        request_id: Annotated[str, Path(max_length=64)],
        caller: Annotated[Caller, Depends(EVERYONE)],
    ) -> dict[str, Any]:
        """Withdraw your own pending request (security may withdraw anyone's)."""
        return (await requests.withdraw(backend.database, caller.principal, request_id)).to_json()

    return router


class PolicyDocument(BaseModel):
    document: str = Field(
        description="the whole policy as YAML or JSON (as `gatehouse policy export` writes it)",
        max_length=10_000_000,
    )
    reason: str = Field(min_length=1, max_length=2000)


class Throw(BaseModel):
    scope: str = Field(examples=["global", "team:payments", "repository:github.com/acme/pay"])
    reason: str = Field(min_length=1, max_length=2000)
    show_reason: bool = Field(False, description="show the reason to the developers refused")
    on_behalf_of: str | None = Field(
        None, description="the security person who instructed it (required of platform-admin)"
    )


class ModelChange(BaseModel):
    model: str = Field(examples=["claude-sonnet-4-6", "claude-haiku-*"], max_length=200)
    reason: str = Field(min_length=1, max_length=2000)


def policy_routes(backend: Backend) -> APIRouter:
    router = APIRouter(tags=["policy"])

    def store() -> PolicyStore:
        return PolicyStore(backend.database, backend.redis_url)

    @router.get("/v1/policy")
    async def current(caller: Annotated[Caller, Depends(READERS)]) -> dict[str, Any]:
        """The policy in force: its version, the document, and the same as YAML."""
        version, policy = await store().current()
        return {"version": version, "policy": policy.to_dict(), "yaml": dump_yaml(policy)}

    @router.get("/v1/policy/history")
    async def history(
        caller: Annotated[Caller, Depends(READERS)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> list[dict[str, Any]]:
        """Versions newest first: who changed the policy, why, from where (api, cli, file)."""
        return [
            {
                "version": v.version,
                "author": v.author,
                "reason": v.reason,
                "source": v.source,
                "created_at": iso(v.created_at),
            }
            for v in await store().history(limit)
        ]

    @router.put("/v1/policy")
    async def apply(
        terms: PolicyDocument, caller: Annotated[Caller, Depends(SECURITY_ONLY)]
    ) -> dict[str, Any]:
        """Replace the whole policy (security only); an invalid document changes nothing."""
        policy = load_yaml(terms.document, source="document")
        version, _ = await service.apply_policy(
            store(), caller.principal, policy, reason=terms.reason, source="api"
        )
        return {"version": version}

    @router.get("/v1/killswitches")
    async def killswitches(caller: Annotated[Caller, Depends(READERS)]) -> list[dict[str, Any]]:
        """The kill switches thrown now, with who threw them and why."""
        _, policy = await store().current()
        return [_switch(k) for k in policy.killswitches]

    @router.post("/v1/killswitches")
    async def throw(terms: Throw, caller: Annotated[Caller, Depends(READERS)]) -> dict[str, Any]:
        """Stop a scope at once (security; platform-admin only on a security person's word)."""
        if not caller.has(SECURITY) and terms.on_behalf_of:
            await _check_security_person(backend, terms.on_behalf_of)
        switch = await service.throw_killswitch(
            store(),
            caller.principal,
            scope=terms.scope,
            reason=terms.reason,
            show_reason=terms.show_reason,
            on_behalf_of=terms.on_behalf_of,
            source="api",
        )
        return _switch(switch)

    @router.delete("/v1/killswitches/{scope:path}")
    async def lift(
        scope: Annotated[str, Path(description="global, team:NAME, repository:…, developer:…")],
        reason: Annotated[str, Query(min_length=1, max_length=2000)],
        caller: Annotated[Caller, Depends(SECURITY_ONLY)],
    ) -> dict[str, Any]:
        """Lift the kill switch on a scope (security)."""
        switch = await service.lift_killswitch(
            store(), caller.principal, scope=scope, reason=reason, source="api"
        )
        return _switch(switch)

    @router.get("/v1/models")
    async def models(caller: Annotated[Caller, Depends(EVERYONE)]) -> dict[str, Any]:
        """Approved models and the proposals awaiting security."""
        _, policy = await store().current()
        listed: dict[str, Any] = policy.to_dict()["models"]
        return listed

    @router.post("/v1/models/proposals")
    async def propose(
        terms: ModelChange, caller: Annotated[Caller, Depends(READERS)]
    ) -> dict[str, Any]:
        """Propose a model for the approved list (platform); security approves it."""
        proposal = await service.propose_model(
            store(), caller.principal, model=terms.model, reason=terms.reason, source="api"
        )
        return {
            "model": proposal.model,
            "proposed_by": proposal.proposed_by,
            "proposed_at": iso(proposal.proposed_at),
            "reason": proposal.reason,
        }

    @router.post("/v1/models/approve")
    async def approve_model(
        terms: ModelChange, caller: Annotated[Caller, Depends(SECURITY_ONLY)]
    ) -> dict[str, Any]:
        """Approve a model or glob (security's vendor-risk veto)."""
        approved = await service.approve_model(
            store(), caller.principal, model=terms.model, reason=terms.reason, source="api"
        )
        return {"approved": list(approved)}

    @router.post("/v1/models/revoke")
    async def revoke_model(
        terms: ModelChange, caller: Annotated[Caller, Depends(SECURITY_ONLY)]
    ) -> dict[str, Any]:
        """Remove a model from the approved list, or reject a proposal (security)."""
        approved = await service.revoke_model(
            store(), caller.principal, model=terms.model, reason=terms.reason, source="api"
        )
        return {"approved": list(approved)}

    return router


async def _check_security_person(backend: Backend, email: str) -> None:
    """A platform admin throwing a switch must name someone who holds the security role."""
    wanted = email.strip().lower()
    holders = {
        key.email.lower()
        for key in await backend.database.list_keys()
        if SECURITY in key.roles and key.revoked_at is None
    }
    if wanted in holders:
        return
    directory = getattr(backend, "directory", None)
    if directory is not None:
        found = await identity_store.lookup(backend.database, wanted, directory)
        if found is not None and found[2] and SECURITY in found[1]:
            return
    raise PermissionDenied(
        f"on_behalf_of must name a person holding the security role; {email} does not"
    )


def _switch(switch: KillSwitch) -> dict[str, Any]:
    return {
        "scope": switch.scope,
        "reason": switch.reason,
        "show_reason": switch.show_reason,
        "thrown_by": switch.thrown_by,
        "on_behalf_of": switch.on_behalf_of,
        "at": iso(switch.at),
    }
