"""Security's vetoes as actions: kill switches, the model list, whole-policy applies.

What `gatehouse killswitch|models|policy` and the admin API both call.  Each
function checks the caller's roles, then changes the policy through
`PolicyStore.change` (one new version, an event with who and why, a Redis
announcement).  The rules, from the issue:

- a kill switch is thrown and lifted by ``security``; ``platform-admin`` may
  do it only on security's instruction, naming who (``on_behalf_of``), which
  is recorded;
- proposing a model is a platform action (``platform-admin``, or
  ``security``); approving or revoking one is ``security``'s alone;
- applying a whole policy document is ``security``'s alone.

The CLI is an operator tool with database access: it states the caller with
``--by`` and ``--role`` and records them.  The admin API is where roles come
from an authenticated principal.  This is an I/O service module (like
`gatehouse.ledger.budgeting`); the decisions stay in `policy.decide`.
"""

from __future__ import annotations

import fnmatch
import time

from gatehouse.errors import InvalidRequest, NotFound, PermissionDenied
from gatehouse.identity.principal import Principal
from gatehouse.identity.roles import PLATFORM_ADMIN, SECURITY
from gatehouse.policy.document import KillSwitch, Policy, Proposal, normalize_scope
from gatehouse.policy.globs import compile_globs
from gatehouse.store.policy import PolicyStore


def _now() -> float:
    return float(int(time.time()))  # whole seconds: YAML exports round-trip exactly


def _reason(reason: str) -> str:
    reason = reason.strip()
    if not reason:
        raise InvalidRequest("say why (--reason): every policy change is recorded with a reason")
    return reason


def _killswitch_actor(caller: Principal, on_behalf_of: str | None, verb: str) -> str | None:
    """Who the change is recorded for; refuses roles that may not touch the switch."""
    if SECURITY in caller.roles:
        return on_behalf_of or None
    if PLATFORM_ADMIN in caller.roles:
        if not on_behalf_of:
            raise PermissionDenied(
                f"platform-admin may {verb} a kill switch only on security's instruction: "
                "name who instructed it (--on-behalf-of EMAIL, or on_behalf_of in the API)"
            )
        return on_behalf_of
    raise PermissionDenied(
        f"only the security role may {verb} a kill switch "
        "(or platform-admin on security's instruction); "
        f"{caller.email} holds {', '.join(caller.roles)}"
    )


async def throw_killswitch(
    store: PolicyStore,
    caller: Principal,
    *,
    scope: str,
    reason: str,
    show_reason: bool = False,
    on_behalf_of: str | None = None,
    source: str = "api",
) -> KillSwitch:
    """Stop ``scope`` (global, team:NAME, repository:NAME, developer:EMAIL) at once."""
    behalf = _killswitch_actor(caller, on_behalf_of, "throw")
    switch = KillSwitch(
        scope=normalize_scope(scope),
        reason=_reason(reason),
        show_reason=show_reason,
        thrown_by=caller.email,
        on_behalf_of=behalf,
        at=_now(),
    )

    def mutate(policy: Policy) -> Policy:
        others = tuple(k for k in policy.killswitches if k.scope != switch.scope)
        return policy.replace(killswitches=(*others, switch))

    who = caller.email + (f" on behalf of {behalf}" if behalf else "")
    await store.change(
        mutate,
        author=who,
        reason=f"kill switch {switch.scope} thrown: {switch.reason}",
        source=source,
        event_kind="killswitch_thrown",
    )
    return switch


async def lift_killswitch(
    store: PolicyStore,
    caller: Principal,
    *,
    scope: str,
    reason: str,
    on_behalf_of: str | None = None,
    source: str = "api",
) -> KillSwitch:
    """Lift the switch on ``scope``; `NotFound` if none is thrown there."""
    behalf = _killswitch_actor(caller, on_behalf_of, "lift")
    wanted, why = normalize_scope(scope), _reason(reason)
    lifted: list[KillSwitch] = []

    def mutate(policy: Policy) -> Policy:
        switch = policy.killswitch(wanted)
        if switch is None:
            raise NotFound(f"no kill switch is thrown for {wanted}")
        lifted.append(switch)
        return policy.replace(killswitches=tuple(k for k in policy.killswitches if k != switch))

    who = caller.email + (f" on behalf of {behalf}" if behalf else "")
    await store.change(
        mutate,
        author=who,
        reason=f"kill switch {wanted} lifted: {why}",
        source=source,
        event_kind="killswitch_lifted",
    )
    return lifted[0]


def _model_glob(model: str) -> str:
    model = model.strip()
    if not model or " " in model or "," in model:
        raise InvalidRequest(f"{model!r} is not a model id or glob (claude-sonnet-4-6, claude-*)")
    compile_globs([model])
    return model


async def propose_model(
    store: PolicyStore, caller: Principal, *, model: str, reason: str, source: str = "api"
) -> Proposal:
    """Platform proposes a model (or glob) for security to approve."""
    if not {PLATFORM_ADMIN, SECURITY} & set(caller.roles):
        raise PermissionDenied("proposing a model is a platform-admin action")
    proposal = Proposal(_model_glob(model), caller.email, _now(), _reason(reason))

    def mutate(policy: Policy) -> Policy:
        models = policy.models
        if proposal.model in models.approved:
            raise InvalidRequest(f"{proposal.model} is already approved")
        kept = tuple(p for p in models.proposed if p.model != proposal.model)
        return policy.replace(
            models=type(models)(models.approved, (*kept, proposal)),
        )

    await store.change(
        mutate,
        author=caller.email,
        reason=f"model {proposal.model} proposed: {proposal.reason}",
        source=source,
        event_kind="model_proposed",
    )
    return proposal


async def approve_model(
    store: PolicyStore, caller: Principal, *, model: str, reason: str, source: str = "api"
) -> tuple[str, ...]:
    """Security approves a model (proposed or not); returns the approved list."""
    if SECURITY not in caller.roles:
        raise PermissionDenied(
            "approving a model is security's vendor-risk veto: only the security role may"
        )
    glob, why = _model_glob(model), _reason(reason)

    def mutate(policy: Policy) -> Policy:
        models = policy.models
        approved = models.approved if glob in models.approved else (*models.approved, glob)
        proposed = tuple(p for p in models.proposed if p.model != glob)
        return policy.replace(models=type(models)(approved, proposed))

    _, policy = await store.change(
        mutate,
        author=caller.email,
        reason=f"model {glob} approved: {why}",
        source=source,
        event_kind="model_approved",
    )
    return policy.models.approved


async def revoke_model(
    store: PolicyStore, caller: Principal, *, model: str, reason: str, source: str = "api"
) -> tuple[str, ...]:
    """Security removes a model from the approved list (or rejects a proposal)."""
    if SECURITY not in caller.roles:
        raise PermissionDenied("revoking a model is security's vendor-risk veto")
    glob, why = _model_glob(model), _reason(reason)

    def mutate(policy: Policy) -> Policy:
        models = policy.models
        known = glob in models.approved or any(p.model == glob for p in models.proposed)
        if not known:
            near = [g for g in models.approved if fnmatch.fnmatchcase(glob, g)]
            hint = f" (it matches the approved glob {near[0]})" if near else ""
            raise NotFound(f"{glob} is neither approved nor proposed{hint}")
        return policy.replace(
            models=type(models)(
                tuple(g for g in models.approved if g != glob),
                tuple(p for p in models.proposed if p.model != glob),
            )
        )

    _, policy = await store.change(
        mutate,
        author=caller.email,
        reason=f"model {glob} revoked: {why}",
        source=source,
        event_kind="model_revoked",
    )
    return policy.models.approved


async def apply_policy(
    store: PolicyStore,
    caller: Principal,
    policy: Policy,
    *,
    reason: str,
    source: str = "file",
) -> tuple[int, Policy]:
    """Replace the whole policy (policy as code): security's alone."""
    if SECURITY not in caller.roles:
        raise PermissionDenied("applying a whole policy is the security role's alone")
    return await store.apply(policy, author=caller.email, reason=_reason(reason), source=source)
