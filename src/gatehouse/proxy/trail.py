"""What a request leaves behind, built when it is recorded: screened response, audit entry.

`Trail` is a base of `handler.Exchange`.  The response (reassembled from the
relayed stream by `ResponseAssembler`) is screened after it was relayed, so
its findings can only be flagged — the first byte is never held back.  The
audit entry keeps the request as forwarded (redacted where the guardrails
redacted, secrets always hidden) and the response the same way; it is spooled
with the usage record, so both survive ``kill -9`` together.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gatehouse.audit.capture import BODY_PARTS, ResponseAssembler
from gatehouse.content import Block, blocks, replaced
from gatehouse.events import Event
from gatehouse.guardrails.screen import Finding
from gatehouse.ledger.usage import UsageRecord

if TYPE_CHECKING:
    from gatehouse.proxy.handler import Proxy

log = logging.getLogger("gatehouse.proxy")


class Trail:
    proxy: Proxy
    record: UsageRecord
    request_id: str
    events: list[Event]
    blocks: list[Block]
    findings: list[Finding]
    actions: Mapping[str, str]
    decision: str
    parsed: dict[str, Any] | None
    assembler: ResponseAssembler | None
    headers: Mapping[str, str]

    def _keep(self, parsed: dict[str, Any]) -> None:
        """After screening: keep the blocks as forwarded and the parameters, not the body.

        An open stream holds only what its audit entry needs (the blocks share
        their strings with nothing else once the parsed body is dropped).
        """
        if self.proxy.audit is None:
            self.parsed = None
            return
        if not self.blocks and self.proxy.screener is None:
            self.blocks = blocks(parsed)
        self.parsed = {k: v for k, v in parsed.items() if k not in BODY_PARTS}

    def _screen_response(self) -> list[Block]:
        """The response's blocks as the audit trail keeps them; findings are flagged."""
        if self.assembler is None:
            return []
        response = self.assembler.blocks()
        screener = self.proxy.screener
        if screener is None or not response:
            return response
        record = self.record
        try:
            outcome = screener.screen(response, self.actions, sent=True)
        except Exception as exc:  # noqa: BLE001 - recorded, and the answer is already out
            log.error("guardrail scanner failed on response %s: %s", self.request_id, exc)
            return []  # an unscreened response is not kept: it could hold a secret
        if outcome.findings:
            self.findings = [*self.findings, *outcome.findings]
            record.guard_findings += len(outcome.findings)
            if record.guard == "clean":
                record.guard = "flagged"
            self.events.append(
                Event(
                    kind="guardrail_finding",
                    subject="response flagged: "
                    + ", ".join(sorted({f"{f.detector}/{f.rule}" for f in outcome.findings})),
                    developer=record.developer,
                    team=record.team,
                    repository=record.repository,
                    session_id=record.session_id,
                    detail={
                        "request_id": self.request_id,
                        "verdict": "flagged",
                        "findings": [f.to_dict() for f in outcome.findings[:100]],
                    },
                )
            )
        return [
            replaced(b, outcome.kept[i]) if i in outcome.kept else b for i, b in enumerate(response)
        ]

    def _audit_entry(self, response: list[Block]) -> dict[str, Any] | None:
        capture = self.proxy.audit
        if capture is None or self.parsed is None:
            return None
        record = self.record
        # Refused before screening (it never left) or unscreened (the scanner failed, so
        # it may hold a secret): the envelope, not the content.
        request_blocks = [] if record.guard in ("refused", "error") else self.blocks
        try:
            return capture.entry(
                request_id=self.request_id,
                ts=record.ts,
                parsed=self.parsed,
                response=response,
                developer=record.developer,
                team=record.team,
                session_id=record.session_id,
                repository=record.repository,
                model=record.model_served or record.model_requested,
                endpoint=record.endpoint,
                status=record.status,
                error_type=record.error_type,
                usage_id=record.id,
                cost_micros=record.cost_micros,
                ttfb_ms=record.ttfb_ms,
                duration_ms=record.duration_ms,
                headers=self.headers,
                guard=record.guard,
                findings=[f.to_dict() for f in self.findings],
                decision=self.decision,
                request_blocks=request_blocks,
            )
        except Exception as exc:  # noqa: BLE001 - never lose the usage record over it
            log.error("cannot build the audit entry of request %s: %s", self.request_id, exc)
            self.events.append(
                Event(
                    kind="audit_error",
                    subject=f"request {self.request_id} is missing from the audit trail",
                    severity="critical",
                    developer=record.developer,
                    session_id=record.session_id,
                    detail={"request_id": self.request_id, "error": type(exc).__name__},
                )
            )
            return None
