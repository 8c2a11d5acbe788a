"""What a request must pass before it goes upstream, after it is authenticated.

The decisions over snapshots (`Admission`, a base of `handler.Exchange`):
the policy (kill switch, vendor veto, allow-list; observe mode), the
repository's path rules over tool results, and the guardrails' screening of
the blocks this process has not seen.  Each either refuses the request
(raising an Anthropic-shaped error) or returns the bytes to forward.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gatehouse.content import Block, blocks, replaced, rewrite_body
from gatehouse.errors import GatewayError, PermissionDenied, Unavailable
from gatehouse.events import Event
from gatehouse.guardrails.screen import Finding, Screening
from gatehouse.identity.principal import Principal
from gatehouse.ledger.usage import UsageRecord
from gatehouse.policy.decide import Allow, Deny, RequestFacts, decide
from gatehouse.policy.document import RepoRule
from gatehouse.policy.guardactions import DEFAULT_ACTIONS
from gatehouse.policy.paths import apply_path_rules, blocked_message, path_events
from gatehouse.policy.repo_claims import RepositoryIdentity
from gatehouse.policy.repos import repository_key

if TYPE_CHECKING:
    from gatehouse.proxy.handler import Proxy

log = logging.getLogger("gatehouse.proxy")
GUARD_EVENT = "guardrail_finding"


class Admission:
    proxy: Proxy
    record: UsageRecord
    request_id: str
    rule: RepoRule | None
    identity: RepositoryIdentity
    events: list[Event]
    blocks: list[Block]  # the request's blocks as forwarded (the audit trail keeps them)
    findings: list[Finding]
    actions: Mapping[str, str]  # the guardrails' actions for this request
    decision: str  # the policy's: allowed | denied:REASON | observed:REASON

    def _apply_path_rules(self, body: bytes, parsed: dict[str, Any]) -> bytes:
        """The repository's path rules over the tool results: the bytes to forward.

        Redacted results are spliced into the original bytes; a ``block`` rule
        refuses the request.  What was done becomes ``path_rule_applied`` events,
        written with the usage record (off the path to the upstream).
        """
        rule, record = self.rule, self.record
        if rule is None and self.proxy.policy is not None and self.identity.is_remote:
            # count_tokens is not decided on the allow-list, but it carries the context.
            rule = self.proxy.policy.snapshot.repositories.get(repository_key(record.repository))
        if rule is None or not rule.paths:
            return body
        outcome = apply_path_rules(
            body, parsed, self.proxy.path_rules.get(rule.paths), root=self.identity.root
        )
        self.events.extend(
            path_events(
                outcome,
                developer=record.developer,
                team=record.team,
                repository=record.repository,
                session_id=record.session_id,
            )
        )
        if outcome.blocked is not None:
            self.decision = "denied:path_rule"
            raise PermissionDenied(blocked_message(outcome.blocked, record.repository))
        return outcome.body

    async def _decide(
        self,
        principal: Principal,
        models: tuple[str, ...],
        *,
        check_repository: bool = True,
        repository: str | None = None,
        source: str = "",
    ) -> RepoRule | None:
        """Ask the policy (kill switch, vendor veto, allow-list); raise its refusal.

        Returns the repository's approval, whose path rules apply to the request.
        """
        policy = self.proxy.policy
        if policy is None:  # no policy service: the bootstrap model list alone
            for model in models:
                self.proxy.models.check(model)
            return None
        record = self.record
        facts = RequestFacts(
            developer=record.developer,
            team=record.team,
            repository=record.repository if repository is None else repository,
            repository_source=record.repository_source if repository is None else source,
            models=models,
            session_id=record.session_id,
            check_repository=check_repository,
        )
        decision = decide(principal, facts, policy.snapshot)
        if isinstance(decision, Allow):
            self.decision = self.decision or "allowed"
            return decision.rule
        if isinstance(decision, Deny):
            self.decision = f"denied:{decision.reason}"
            raise decision.error
        self.decision = f"observed:{decision.would_deny.reason}"
        await self._observed(decision.would_deny)
        return decision.rule

    async def _observed(self, denial: Deny) -> None:
        """Observe mode: say once per session and reason what enforce would have refused."""
        record = self.record
        seen = (record.session_id or record.developer, record.repository, denial.reason)
        if seen in self.proxy.observed:
            return
        if len(self.proxy.observed) > 100_000:
            self.proxy.observed.clear()
        self.proxy.observed.add(seen)
        event = Event(
            kind="policy_would_deny",
            subject=f"would deny {record.developer}: {denial.reason} {record.repository}".strip(),
            severity="warning",
            developer=record.developer,
            team=record.team,
            repository=record.repository,
            session_id=record.session_id,
            detail={
                "reason": denial.reason,
                "message": denial.error.message,
                "repository_source": record.repository_source,
                "request_id": self.request_id,
            },
        )
        try:
            await self.proxy.recorder.event(event)
        except GatewayError as exc:  # observing must never refuse a request
            log.warning("cannot record a policy_would_deny event: %s", exc.message)

    def _screen(self, body: bytes, parsed: dict[str, Any]) -> bytes:
        """The guardrails over the request's blocks: the bytes to forward, or a refusal."""
        screener = self.proxy.screener
        if screener is None:
            return body
        record = self.record
        policy = self.proxy.policy
        self.actions = actions = (
            policy.snapshot.policy.guardrails.for_request(record.team, record.repository)
            if policy is not None
            else DEFAULT_ACTIONS
        )
        try:
            self.blocks = blocks(parsed)
            outcome = screener.screen(self.blocks, actions)
            if outcome.rewrites:
                body = rewrite_body(body, parsed, self.blocks, outcome.rewrites)
            if outcome.kept:  # the audit trail keeps what left, and never a secret
                self.blocks = [
                    replaced(b, outcome.kept[i]) if i in outcome.kept else b
                    for i, b in enumerate(self.blocks)
                ]
        except Exception as exc:  # noqa: BLE001 - a scanner bug is recorded, never silent
            return self._screening_failed(body, exc)
        record.guard = outcome.verdict
        record.guard_findings = len(outcome.findings)
        self.findings = outcome.findings
        if any(f.new for f in outcome.findings):
            self.events.append(self._guard_event(outcome))
        if outcome.blocked is not None:
            contact = policy.snapshot.contact if policy is not None else ""
            raise PermissionDenied(guard_message(outcome.blocked, contact))
        return body

    def _screening_failed(self, body: bytes, exc: Exception) -> bytes:
        record = self.record
        record.guard = "error"
        log.error("guardrail scanner failed on request %s: %s", self.request_id, type(exc).__name__)
        fail_closed = self.proxy.guard_fail == "closed"
        self.events.append(
            Event(
                kind="guardrail_error",
                subject=f"the guardrail scanner failed ({type(exc).__name__}); "
                + ("request refused" if fail_closed else "request forwarded unscreened"),
                severity="critical",
                developer=record.developer,
                team=record.team,
                repository=record.repository,
                session_id=record.session_id,
                detail={"request_id": self.request_id, "error": type(exc).__name__},
            )
        )
        if fail_closed:
            raise Unavailable(
                "Gatehouse could not screen this request and its guardrails are set to fail "
                f"closed; please try again or tell your platform team (request {self.request_id})"
            ) from None
        return body

    def _guard_event(self, outcome: Screening) -> Event:
        record = self.record
        new = [f for f in outcome.findings if f.new]
        rules = sorted({f"{f.detector}/{f.rule}" for f in new})
        return Event(
            kind=GUARD_EVENT,
            subject=f"{outcome.verdict}: {', '.join(rules)}",
            severity="warning" if outcome.verdict in ("blocked", "redacted") else "info",
            developer=record.developer,
            team=record.team,
            repository=record.repository,
            session_id=record.session_id,
            detail={
                "request_id": self.request_id,
                "verdict": outcome.verdict,
                "findings": [f.to_dict() for f in new[:100]],
            },
        )


def guard_message(finding: Finding, contact: str) -> str:
    """The refusal a developer reads: detector, rule and place — never the content."""
    what = {
        "secrets": "a secret",
        "pii": "personal data",
        "markers": "a classification marker",
        "injection": "a prompt-injection attempt",
    }.get(finding.detector, finding.detector)
    ask = f" If this is wrong, contact {contact}." if contact else ""
    return (
        f"Gatehouse blocked this request: its {finding.detector} guardrail found {what} "
        f"(rule {finding.rule}) in {finding.block}. Remove it from the conversation "
        "(Claude Code resends earlier turns: use /clear or /rewind) and try again." + ask
    )
