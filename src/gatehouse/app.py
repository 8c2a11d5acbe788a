"""`create_app(settings)` builds the whole ASGI application in one visible place."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from gatehouse.admin.app import create_admin_app
from gatehouse.audit.capture import AuditCapture
from gatehouse.audit.crypto import AuditKeyError, Keyring
from gatehouse.audit.upkeep import AuditUpkeep
from gatehouse.errors import GatewayError, NotFound, Unavailable, error_body
from gatehouse.guardrails.rules import RulesError
from gatehouse.guardrails.screen import load_screener
from gatehouse.identity.auth_routes import token_routes
from gatehouse.identity.authenticator import Authenticator
from gatehouse.identity.directory import Directory
from gatehouse.identity.keys import KeyStore, load_secret
from gatehouse.identity.principal import Principal
from gatehouse.identity.revocation import IdentityWatcher, Revocations
from gatehouse.identity.scim import scim_routes
from gatehouse.identity.session import Sessions
from gatehouse.identity.tokens import AccessTokens
from gatehouse.ledger.enforcement import BudgetService
from gatehouse.ledger.meter import CostCentres, Meter
from gatehouse.ledger.prices import PriceTable, load_price_table
from gatehouse.ledger.recorder import DatabaseSink, Recorder
from gatehouse.policy.enforcement import PolicyService
from gatehouse.policy.models import ModelPolicy
from gatehouse.policy.ratelimit import MemoryCounter, RateLimiter
from gatehouse.providers.anthropic import AnthropicUpstream, UpstreamConfig
from gatehouse.proxy.asgi import send_error
from gatehouse.proxy.handler import Kind, Proxy
from gatehouse.settings import Settings, SettingsError
from gatehouse.store import identity as identity_store
from gatehouse.store.db import Database
from gatehouse.store.policy import PolicyStore
from gatehouse.store.redis_counter import RedisCounter
from gatehouse.store.spool import Spool, SpoolDrainer
from gatehouse.web.auth import auth_routes

# Claude Code's Vertex mode: ANTHROPIC_VERTEX_BASE_URL may carry any prefix (…/vertex).
VERTEX_PATH = "/projects/{project}/locations/{location}/publishers/anthropic/models/{target}"


class Services:
    """What the app runs on, started by the lifespan and closed in reverse order."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._proxy: Proxy | None = None
        self.db: Database | None = None
        self.keyring: Keyring | None = None  # decrypts audit blocks (audit_key_file)
        self.drainer: SpoolDrainer | None = None
        self.budgets: BudgetService | None = None
        self.identity: IdentityWatcher | None = None
        self.policy: PolicyService | None = None
        self.sessions = Sessions(  # browser sign-in cookies (web/auth.py, admin API)
            settings,
            deprovisioned=lambda email: self.revocations.user_deprovisioned(email) is not None,
        )
        self._tokens: AccessTokens | None = None
        self._secret: bytes | None = None

    @property
    def proxy(self) -> Proxy:
        if self._proxy is None:
            raise Unavailable("Gatehouse is starting up; retry in a moment")
        return self._proxy

    # -- what the admin API reads (admin.app.Backend) --

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        return self.proxy.authenticator.authenticate(headers)

    # -- what /auth/token reads (identity.auth_routes.TokenBackend) --

    @property
    def access_tokens(self) -> AccessTokens:
        if self._tokens is None:
            raise Unavailable("Gatehouse is starting up; retry in a moment")
        return self._tokens

    @property
    def secret(self) -> bytes:
        if self._secret is None:
            raise Unavailable("Gatehouse is starting up; retry in a moment")
        return self._secret

    @property
    def directory(self) -> Directory:
        return Directory.from_settings(self.settings)

    @property
    def revocations(self) -> Revocations:
        return self.identity.revocations if self.identity is not None else Revocations()

    @property
    def database(self) -> Database:
        if self.db is None:
            raise Unavailable("Gatehouse is starting up; retry in a moment")
        return self.db

    @property
    def prices(self) -> PriceTable:
        return self.proxy.meter.prices

    @property
    def redis_url(self) -> str:
        return self.settings.redis_url

    @property
    def audit_keyring(self) -> Keyring | None:
        return self.keyring

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        settings = self.settings
        if not settings.upstream_url:
            raise SettingsError(
                "no upstream: set GATEHOUSE_UPSTREAM_URL (and GATEHOUSE_UPSTREAM_API_KEY), "
                "or run `gatehouse serve` without either to use the built-in simulator"
            )
        # Read before anything starts: a malformed table stops start-up, not a request.
        meter = Meter(
            load_price_table(Path(settings.price_file) if settings.price_file else None),
            CostCentres.load(
                Path(settings.cost_centres_file) if settings.cost_centres_file else None
            ),
        )
        async with contextlib.AsyncExitStack() as stack:
            db = await Database.open(settings.resolved_database_url)
            stack.push_async_callback(db.close)
            spool = Spool(settings.spool_dir, sync_interval=settings.spool_sync_interval)
            await spool.open()
            stack.push_async_callback(spool.close)
            keyring = None
            if settings.audit_key_file:
                try:
                    keyring = self.keyring = Keyring.load(Path(settings.audit_key_file))
                except AuditKeyError as exc:
                    raise SettingsError(f"setting 'audit_key_file': {exc.message}") from None
            drainer = SpoolDrainer(
                spool,
                DatabaseSink(db, settings.data_dir / "unknown-kinds.jsonl", audit_keyring=keyring),
            )
            await drainer.start()
            stack.push_async_callback(drainer.close)
            upkeep = AuditUpkeep(db, retention_days=settings.audit_retention_days)
            await upkeep.start()
            stack.push_async_callback(upkeep.close)
            redis = None
            if settings.redis_url:
                # Fail fast: a request never waits on Redis retries (see RedisCounter).
                redis = Redis.from_url(
                    settings.redis_url,
                    socket_connect_timeout=1.0,
                    socket_timeout=1.0,
                    retry=Retry(NoBackoff(), 0),
                )
                stack.push_async_callback(redis.aclose)
            secret = load_secret(settings.secret_key, settings.data_dir)
            keys = KeyStore(
                db,
                secret,
                refresh_interval=settings.key_refresh_interval,
                deprovisioned=functools.partial(identity_store.deprovisioned, db),
            )
            await keys.start()
            stack.push_async_callback(keys.close)
            identity = IdentityWatcher(db, refresh_interval=settings.key_refresh_interval)
            await identity.start()
            stack.push_async_callback(identity.close)
            models = ModelPolicy.parse(settings.approved_models)
            policy = PolicyService(
                PolicyStore(db, settings.redis_url),
                env_models=models.approved,
                force_observe=settings.policy_mode == "observe",
                refresh_interval=settings.policy_refresh_interval,
            )
            await policy.start()
            stack.push_async_callback(policy.close)
            if redis is not None:
                keys.follow(redis)
                identity.follow(redis)
                policy.follow(redis)
            tokens = AccessTokens(secret, ttl=settings.access_token_ttl)
            upstream = AnthropicUpstream(
                UpstreamConfig(
                    base_url=settings.upstream_url,
                    api_key=settings.upstream_api_key,
                    connect_timeout=settings.upstream_connect_timeout,
                    header_timeout=settings.upstream_header_timeout,
                    idle_timeout=settings.upstream_idle_timeout,
                )
            )
            await upstream.start()
            stack.push_async_callback(upstream.close)
            recorder = Recorder(spool)
            budgets = BudgetService(
                db,
                recorder,
                redis=redis,
                webhook_url=settings.alert_webhook_url,
                refresh_interval=settings.budget_refresh_interval,
            )
            await budgets.start()
            stack.push_async_callback(budgets.close)
            try:
                screener = load_screener(
                    settings.guard_rules,
                    classifier=settings.guard_injection_classifier,
                    cache_dir=settings.data_dir / "cache",
                )
            except RulesError as exc:
                raise SettingsError(f"setting 'guard_rules': {exc.message}") from None
            limit = settings.parsed_rate_limit
            counter = RedisCounter(redis) if redis is not None else MemoryCounter()
            self.db, self.drainer, self.budgets = db, drainer, budgets
            self.identity, self._tokens, self._secret = identity, tokens, secret
            self.policy = policy
            self._proxy = Proxy(
                keys=keys,
                upstream=upstream,
                recorder=recorder,
                meter=meter,
                max_body_bytes=settings.max_body_bytes,
                models=models,
                limiter=RateLimiter(limit, counter) if limit else None,
                budgets=budgets.guard,
                authenticator=Authenticator(keys, tokens, identity),
                policy=policy,
                screener=screener,
                guard_fail=settings.guard_fail,
                audit=AuditCapture(thinking=settings.audit_thinking) if settings.audit else None,
            )
            # Everything built so far lives as long as the process: keep the
            # collector from walking it again and again (fewer, shorter GC pauses).
            gc.collect()
            gc.freeze()
            try:
                yield
            finally:
                self._proxy = None


class ProxyEndpoint:
    """A raw ASGI endpoint: Starlette treats class instances as ASGI apps, skipping Request."""

    def __init__(self, services: Services, kind: Kind) -> None:
        self.services = services
        self.kind = kind

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            proxy = self.services.proxy
        except Unavailable as exc:
            await send_error(send, exc)
            return
        await proxy.handle(self.kind, scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    services = Services(settings)

    async def healthz(request: Request) -> Response:
        return _json({"status": "ok"})

    async def readyz(request: Request) -> Response:
        """Ready while usage can be recorded durably; the database may be away.

        During a database outage every replica keeps serving and spools its
        records, so pulling them all out of the load balancer would turn a
        database blip into an outage: the answer is 200 with ``"degraded"``.
        ``?strict=1`` also requires the database (for deploy checks).
        """
        db, drainer = services.db, services.drainer
        if db is None or drainer is None:
            return _json({"status": "starting"}, status=503)
        checks: dict[str, object] = {"spool_backlog": drainer.backlog}
        try:
            async with asyncio.timeout(2.0):
                await db.ping()
            checks["database"] = "ok"
        except GatewayError as exc:
            checks["database"] = f"unreachable: {exc.message}"
        except TimeoutError:
            checks["database"] = "unreachable: no answer within 2 s"
        if drainer.last_error:
            checks["spool_last_error"] = drainer.last_error
        running = drainer.running
        checks["spool"] = "draining" if drainer.healthy else ("retrying" if running else "stopped")
        database_ok = checks["database"] == "ok"
        ready = running and (database_ok or request.query_params.get("strict") != "1")
        checks["status"] = ("ready" if database_ok else "degraded") if ready else "not ready"
        return _json(checks, status=200 if ready else 503)

    async def hello(request: Request) -> Response:
        # Claude Code's best-effort warm-up probe (HEAD /api/hello).
        return Response(status_code=200)

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        await send_error(send, NotFound(f"no route for {scope['method']} {scope['path']}"))

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/api/hello", hello, methods=["GET", "HEAD"]),
        Route("/v1/messages", ProxyEndpoint(services, Kind.MESSAGES), methods=["POST"]),
        Route(
            "/v1/messages/count_tokens",
            ProxyEndpoint(services, Kind.COUNT_TOKENS),
            methods=["POST"],
        ),
        Route(VERTEX_PATH, ProxyEndpoint(services, Kind.VERTEX), methods=["POST"]),
        Route(
            "/{prefix:path}" + VERTEX_PATH, ProxyEndpoint(services, Kind.VERTEX), methods=["POST"]
        ),
        Route("/v1/{rest:path}", ProxyEndpoint(services, Kind.PASSTHROUGH)),
        *token_routes(services),
        *auth_routes(services),
        *scim_routes(services),
        Mount("/admin/api", app=create_admin_app(services)),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with services.running():
            yield

    async def http_error(request: Request, exc: Exception) -> Response:
        # Starlette's own refusals (405 and the like), in Anthropic's shape.
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        error_type = _ERROR_TYPES.get(status, "invalid_request_error")
        detail = exc.detail if isinstance(exc, HTTPException) else "internal error"
        return Response(
            error_body(error_type, f"{request.method} {request.url.path}: {detail}"),
            status_code=status,
            media_type="application/json",
            headers={"x-should-retry": "false"},
        )

    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )
    app.router.default = not_found
    app.state.services = services
    return app


_ERROR_TYPES = {404: "not_found_error", 405: "invalid_request_error", 413: "request_too_large"}


def _json(data: object, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")
