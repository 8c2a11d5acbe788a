"""The data plane: authenticate, attribute, forward, relay, record.

One `Exchange` per request.  The upstream exchange runs as its own task raced
against the client's disconnect, so a client that hangs up cancels the
upstream request at once and its usage is still recorded.  Response bytes are
relayed as they arrive; the usage record of a stream is made durable before
the chunk carrying ``message_stop`` is released, so a client that saw its
response complete always has its record, even across ``kill -9``.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
import uuid
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from gatehouse.errors import GatewayError, InvalidRequest, PermissionDenied, Unavailable
from gatehouse.events import Event
from gatehouse.identity.authenticator import Authenticator
from gatehouse.identity.keys import KeyStore
from gatehouse.identity.principal import Principal
from gatehouse.ledger.guard import BudgetGuard
from gatehouse.ledger.meter import Meter
from gatehouse.ledger.recorder import Recorder
from gatehouse.ledger.usage import UsageRecord
from gatehouse.policy.decide import Allow, Deny, RequestFacts, decide
from gatehouse.policy.document import RepoRule
from gatehouse.policy.enforcement import PolicyService
from gatehouse.policy.models import ModelPolicy, models_in
from gatehouse.policy.pathmatch import PathRulesCache
from gatehouse.policy.paths import apply_path_rules, blocked_message, path_events
from gatehouse.policy.ratelimit import RateLimiter
from gatehouse.policy.repo_claims import (
    RepositoryIdentity,
    SessionRepositories,
    identify,
    mismatch_event,
)
from gatehouse.policy.repos import repository_key
from gatehouse.providers.anthropic import (
    HOP_BY_HOP,
    AnthropicUpstream,
    UpstreamResponse,
    forwardable,
)
from gatehouse.proxy import vertex
from gatehouse.proxy.asgi import (
    ClientGone,
    ResponseAborted,
    header_map,
    read_body,
    send_error,
)
from gatehouse.proxy.attribution import attribute, parse_user_agent
from gatehouse.proxy.sse import UsageTee, apply_json_response

log = logging.getLogger("gatehouse.proxy")

# The client's own credential never leaves Gatehouse; the upstream's replaces it.
# Accept-Encoding is left to the upstream client, which decompresses what it reads.
_NOT_FORWARDED = frozenset({"authorization", "x-api-key", "accept-encoding"})


# Besides hop-by-hop headers: the server stamps its own Date and Server.
_NOT_RELAYED = HOP_BY_HOP | {"date", "server"}


class Kind(enum.Enum):
    MESSAGES = "messages"
    COUNT_TOKENS = "count_tokens"
    VERTEX = "vertex"
    PASSTHROUGH = "passthrough"


class Proxy:
    """Everything the `/v1` endpoints share; built once by `create_app`."""

    def __init__(
        self,
        *,
        keys: KeyStore,
        upstream: AnthropicUpstream,
        recorder: Recorder,
        meter: Meter,
        max_body_bytes: int,
        models: ModelPolicy | None = None,
        limiter: RateLimiter | None = None,
        budgets: BudgetGuard | None = None,
        authenticator: Authenticator | None = None,
        policy: PolicyService | None = None,
    ) -> None:
        self.keys = keys
        # Keys and access tokens; a bare KeyStore when no tokens are configured.
        self.authenticator: Authenticator | KeyStore = authenticator or keys
        self.upstream = upstream
        self.recorder = recorder
        self.meter = meter
        self.max_body_bytes = max_body_bytes
        self.models = models or ModelPolicy()
        self.limiter = limiter
        self.budgets = budgets
        self.policy = policy
        # Which repository each session resolved (per process) and compiled path rules.
        self.sessions = SessionRepositories()
        self.path_rules = PathRulesCache()
        # Observe-mode events already spooled by this process: one per (session, reason).
        self.observed: set[tuple[str, str, str]] = set()

    async def handle(self, kind: Kind, scope: Scope, receive: Receive, send: Send) -> None:
        await Exchange(self, kind, scope, receive, send).run()


class Exchange:
    def __init__(self, proxy: Proxy, kind: Kind, scope: Scope, receive: Receive, send: Send):
        self.proxy = proxy
        self.kind = kind
        self.scope = scope
        self.receive = receive
        self.send = send
        self.started = time.perf_counter()
        self.request_id = "gh_" + uuid.uuid4().hex[:24]
        self.record = UsageRecord(endpoint=scope["path"])
        query = scope.get("query_string", b"")
        self.target = scope["path"] + ("?" + query.decode("latin-1") if query else "")
        self.response_started = False
        self.recorded = False
        self.disconnected = False
        self.rule: RepoRule | None = None  # the repository's approval: its path rules apply
        self.identity = RepositoryIdentity()
        self.events: list[Event] = []  # written with the usage record

    async def run(self) -> None:
        try:
            await self._handle()
        except ResponseAborted:
            raise  # uvicorn closes the connection; the record is written below
        except Exception:
            # A bug, not a refusal: log it here, show the client an Anthropic-shaped 500.
            log.exception("unexpected error in request %s", self.request_id)
            await self._refuse(
                GatewayError(f"internal error in Gatehouse (request {self.request_id})")
            )
        finally:
            await self._finish()

    async def _handle(self) -> None:
        try:
            body = await self._admit()
        except ClientGone:
            self._client_gone()
            return
        except GatewayError as exc:
            await self._refuse(exc)
            return
        await self._race(body)

    async def _admit(self) -> bytes:
        """Authenticate and read the request; everything decided before going upstream."""
        headers = header_map(self.scope["headers"])
        record = self.record
        # What the headers say comes first, so even a refused request joins its session.
        record.session_id = headers.get("x-claude-code-session-id", "")
        record.client, record.client_version = parse_user_agent(headers.get("user-agent", ""))
        principal = self.proxy.authenticator.authenticate(headers)
        record.key_id = principal.key_id
        record.developer = principal.email
        record.team = principal.team
        if principal.repository:
            # An access token's signed claim outranks anything the request says.
            record.repository, record.repository_source = principal.repository, "token"
        body = await read_body(self.receive, headers, self.proxy.max_body_bytes)
        if self.kind is Kind.PASSTHROUGH:
            # Batches and future endpoints name models too: the veto covers them.
            named = tuple(models_in(body, headers.get("content-type", "")))
            await self._decide(principal, named, check_repository=False)
            if self.scope["method"] == "POST":
                if self.proxy.budgets is not None:
                    self.proxy.budgets.check(
                        principal.email, principal.team, principal.repository, time.time()
                    )
                if self.proxy.limiter is not None:
                    await self.proxy.limiter.check(principal.email)
            return body
        if self.kind is Kind.VERTEX:
            call = vertex.translate(self.scope["path_params"]["target"], parse_object(body))
            body, parsed, self.target = call.body, call.parsed, call.target
        else:
            parsed = parse_messages_body(body)
        who = attribute(headers, parsed)
        record.session_id = who.session_id
        record.client = who.client
        record.client_version = who.client_version
        record.request_class = who.request_class
        # Every source's claim; the session holds the repository it first resolved.
        own = identify(principal.repository, headers, parsed)
        identity = self.proxy.sessions.settle(who.session_id, own)
        self.identity = identity
        record.repository, record.repository_source = identity.repository, identity.source
        mismatch = mismatch_event(
            identity, developer=record.developer, team=record.team, session_id=record.session_id
        )
        if mismatch is not None and self.proxy.sessions.first_report(record.session_id, identity):
            self.events.append(mismatch)
        model = parsed.get("model")
        record.model_requested = model if isinstance(model, str) else ""
        record.streamed = parsed.get("stream") is True
        if self.target.startswith("/v1/messages/count_tokens"):
            # Counting tokens costs nothing: only an incident stop applies.
            await self._decide(principal, (), check_repository=False)
            # The conversation goes upstream to be counted: the same path rules apply.
            return self._apply_path_rules(body, parsed)
        self.rule = await self._decide(principal, (record.model_requested,))
        if own.is_remote and own.repository != identity.repository:
            # The session keeps its first repository, but content from another one must
            # not ride on that approval: the request's own claim is decided as well.
            await self._decide(principal, (), repository=own.repository, source=own.source)
        if self.proxy.budgets is not None:
            self.proxy.budgets.check(record.developer, record.team, record.repository, time.time())
        if self.proxy.limiter is not None:
            await self.proxy.limiter.check(principal.email)
        return self._apply_path_rules(body, parsed)

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
            return decision.rule
        if isinstance(decision, Deny):
            raise decision.error
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

    async def _race(self, body: bytes) -> None:
        """Run the upstream exchange against the client's disconnect."""
        exchange = asyncio.ensure_future(self._forward(body))
        watcher = asyncio.ensure_future(self._wait_for_disconnect())
        try:
            await asyncio.wait((exchange, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watcher.cancel()
            if not exchange.done():
                exchange.cancel()
                # Let the exchange close the upstream response before we go on.
                await asyncio.wait((exchange,))
        if exchange.cancelled() or self.disconnected:
            self._client_gone()
            return
        error = exchange.exception()
        if isinstance(error, GatewayError):
            await self._refuse(error)
        elif error is not None:
            raise error

    def _client_gone(self) -> None:
        record = self.record
        record.client_disconnected = True
        record.error_type = record.error_type or "client_disconnected"
        record.status = record.status or 499  # nginx's "client closed request"

    async def _wait_for_disconnect(self) -> None:
        while (await self.receive())["type"] != "http.disconnect":
            pass
        self.disconnected = True

    async def _forward(self, body: bytes) -> None:
        scope = self.scope
        headers = forwardable(scope["headers"], drop=_NOT_FORWARDED)
        if self.kind is Kind.VERTEX and not any(n == "anthropic-version" for n, _ in headers):
            headers.append(("anthropic-version", vertex.ANTHROPIC_VERSION))
        response = await self.proxy.upstream.send(scope["method"], self.target, headers, body)
        try:
            await self._relay(response)
        finally:
            response.close()

    async def _relay(self, response: UpstreamResponse) -> None:
        record = self.record
        record.status = response.status
        record.upstream_request_id = response.header("request-id")
        headers = self._response_headers(response)
        content_type = response.header("content-type")
        if content_type.startswith("application/json"):
            payload = await response.read()
            apply_json_response(record, payload)
            self._first_byte()
            await self._record()
            await self._start(response.status, headers)
            await self._body(payload, more=False)
            return
        await self._start(response.status, headers)
        tee = UsageTee(record) if content_type.startswith("text/event-stream") else None
        try:
            async for chunk in response.chunks():
                if record.ttfb_ms is None:
                    self._first_byte()
                if tee is not None and tee.feed(chunk) and not self.recorded:
                    await self._record()
                await self._body(chunk, more=True)
        except GatewayError as exc:
            # Headers are gone already: say what happened the way the Messages API
            # does mid-stream, so clients (Claude Code retries these) see an error.
            record.error_type = exc.error_type
            if tee is None:
                # No way to say it in-band: cut the connection so the client sees a
                # truncated body as an error, not as a complete response.
                raise ResponseAborted(exc.message) from exc
            await self._body(sse_error(exc), more=True)
        await self._body(b"", more=False)
        if tee is not None and not tee.finished and not record.error_type:
            record.error_type = "incomplete_stream"

    def _response_headers(self, response: UpstreamResponse) -> list[tuple[bytes, bytes]]:
        out = [
            (name, value)
            for name, value in response.headers
            if name.decode("latin-1").lower() not in _NOT_RELAYED
        ]
        out.append((b"x-gatehouse-request-id", self.request_id.encode()))
        return out

    async def _start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.response_started = True
        await self.send({"type": "http.response.start", "status": status, "headers": headers})

    def _first_byte(self) -> None:
        self.record.ttfb_ms = (time.perf_counter() - self.started) * 1000

    async def _body(self, chunk: bytes, *, more: bool) -> None:
        await self.send({"type": "http.response.body", "body": chunk, "more_body": more})

    async def _refuse(self, error: GatewayError) -> None:
        self.record.status = error.status
        self.record.error_type = error.error_type
        if self.response_started:
            return  # mid-stream: the client sees the stream end; the record says why
        self._first_byte()
        await send_error(self.send, error, [(b"x-gatehouse-request-id", self.request_id.encode())])
        self.response_started = True

    async def _record(self) -> None:
        """Make the usage record durable (idempotent; shielded from cancellation)."""
        if self.recorded:
            return
        self.recorded = True
        self.record.duration_ms = (time.perf_counter() - self.started) * 1000
        unpriced = self.proxy.meter.price(self.record)
        if self.proxy.budgets is not None:
            # Spent upstream whether or not the record can be kept: charge it first.
            self.proxy.budgets.charge(self.record)
        try:
            await asyncio.shield(self.proxy.recorder.record(self.record))
            if unpriced is not None:
                await asyncio.shield(self.proxy.recorder.event(unpriced))
            for event in self.events:
                await asyncio.shield(self.proxy.recorder.event(event))
        except GatewayError as exc:
            # Fail closed: an answer whose usage cannot be kept is not released.
            log.error("cannot record usage of request %s: %s", self.request_id, exc.message)
            raise Unavailable(
                "Gatehouse could not record this request's usage, so it withholds the answer; "
                f"please tell your platform team (request {self.request_id})"
            ) from exc

    async def _finish(self) -> None:
        if not self.recorded:
            # A failure is logged in _record; the response, if any, is already out.
            with contextlib.suppress(Unavailable):
                await self._record()


def sse_error(error: GatewayError) -> bytes:
    return b"event: error\ndata: " + error.body() + b"\n\n"


def parse_object(body: bytes) -> dict[str, Any]:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise InvalidRequest("request body must be a JSON object with `model` and `messages`")
    return parsed


def parse_messages_body(body: bytes) -> dict[str, Any]:
    """Parse for decisions only; the original bytes are what goes upstream."""
    parsed = parse_object(body)
    model = parsed.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequest(
            "`model` is required: name the Claude model to use (for example claude-sonnet-4-6)"
        )
    messages = parsed.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("`messages` is required and must be a list of message objects")
    return parsed
