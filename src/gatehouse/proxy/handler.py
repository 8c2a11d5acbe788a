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

from gatehouse.audit.capture import AuditCapture, ResponseAssembler
from gatehouse.content import Block
from gatehouse.errors import GatewayError, InvalidRequest, Unavailable
from gatehouse.events import Event
from gatehouse.guardrails.screen import Finding, Screener
from gatehouse.identity.authenticator import Authenticator
from gatehouse.identity.keys import KeyStore
from gatehouse.ledger.guard import BudgetGuard
from gatehouse.ledger.meter import Meter
from gatehouse.ledger.recorder import Recorder
from gatehouse.ledger.usage import UsageRecord
from gatehouse.policy.enforcement import PolicyService
from gatehouse.policy.guardactions import DEFAULT_ACTIONS
from gatehouse.policy.models import ModelPolicy, models_in
from gatehouse.policy.pathmatch import PathRulesCache
from gatehouse.policy.ratelimit import RateLimiter
from gatehouse.policy.repo_claims import (
    RepositoryIdentity,
    SessionRepositories,
    identify,
    mismatch_event,
)
from gatehouse.providers.anthropic import (
    HOP_BY_HOP,
    AnthropicUpstream,
    UpstreamResponse,
    forwardable,
)
from gatehouse.proxy import vertex
from gatehouse.proxy.admission import Admission
from gatehouse.proxy.asgi import (
    ClientGone,
    ResponseAborted,
    header_map,
    read_body,
    send_error,
)
from gatehouse.proxy.attribution import attribute, parse_user_agent
from gatehouse.proxy.sse import UsageTee, apply_json_response
from gatehouse.proxy.trail import Trail

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
        screener: Screener | None = None,
        guard_fail: str = "open",
        audit: AuditCapture | None = None,
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
        self.screener = screener
        self.guard_fail = guard_fail
        self.audit = audit
        # Which repository each session resolved (per process) and compiled path rules.
        self.sessions = SessionRepositories()
        self.path_rules = PathRulesCache()
        # Observe-mode events already spooled by this process: one per (session, reason).
        self.observed: set[tuple[str, str, str]] = set()

    async def handle(self, kind: Kind, scope: Scope, receive: Receive, send: Send) -> None:
        await Exchange(self, kind, scope, receive, send).run()


class Exchange(Admission, Trail):
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
        self.rule = None  # the repository's approval: its path rules apply
        self.identity = RepositoryIdentity()
        self.events: list[Event] = []  # written with the usage record
        self.blocks: list[Block] = []
        self.findings: list[Finding] = []
        self.actions = DEFAULT_ACTIONS
        self.decision = ""
        self.headers: dict[str, str] = {}
        self.parsed: dict[str, Any] | None = None  # the Messages request (`Trail._keep`)
        watching = proxy.screener is not None or proxy.audit is not None
        self.assembler = ResponseAssembler() if watching else None

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
            # Refused before it was screened: nothing left, so coverage does not count it.
            self.record.guard = self.record.guard or "refused"
            await self._refuse(exc)
            return
        await self._race(body)

    async def _admit(self) -> bytes:
        """Authenticate and read the request; everything decided before going upstream."""
        self.headers = headers = header_map(self.scope["headers"])
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
        self.parsed = parsed
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
            # The conversation goes upstream to be counted: the same rules apply.
            return self._filter(body, parsed)
        self.rule = await self._decide(principal, (record.model_requested,))
        if own.is_remote and own.repository != identity.repository:
            # The session keeps its first repository, but content from another one must
            # not ride on that approval: the request's own claim is decided as well.
            await self._decide(principal, (), repository=own.repository, source=own.source)
        if self.proxy.budgets is not None:
            self.proxy.budgets.check(record.developer, record.team, record.repository, time.time())
        if self.proxy.limiter is not None:
            await self.proxy.limiter.check(principal.email)
        return self._filter(body, parsed)

    def _filter(self, body: bytes, parsed: dict[str, Any]) -> bytes:
        """Path rules, then the guardrails: the bytes that go upstream."""
        filtered = self._apply_path_rules(body, parsed)
        if filtered is not body:
            parsed = parse_object(filtered)  # the guardrails read what is forwarded
        try:
            return self._screen(filtered, parsed)
        finally:
            self._keep(parsed)

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
            if self.assembler is not None:
                self.assembler.feed_json(payload)
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
                if self.assembler is not None and tee is not None:
                    self.assembler.feed(chunk)
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
        response = self._screen_response()
        recorder = self.proxy.recorder
        writes = [recorder.record(self.record)]
        writes += [recorder.event(e) for e in (unpriced, *self.events) if e is not None]
        audit = self._audit_entry(response)
        if audit is not None:
            writes.append(recorder.audit(audit))
        try:
            # Appended together, so one fsync makes them all durable.
            await asyncio.shield(asyncio.gather(*writes))
            if audit is not None and self.proxy.audit is not None:
                self.proxy.audit.spooled(audit)
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
