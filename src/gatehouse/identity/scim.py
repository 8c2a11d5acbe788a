"""SCIM 2.0 provisioning under ``/scim/v2/``: the IdP creates, updates and removes
the humans and groups Gatehouse knows (RFC 7643/7644).

Bearer-token protected (``GATEHOUSE_SCIM_TOKEN``; empty disables SCIM: 404).
Deactivating (``active: false``) or deleting a user deprovisions them: every key
they own is revoked (their service keys too), every login credential, and the
change is announced on Redis (``gatehouse:keys``, ``gatehouse:identity``) before
the response goes out, so every replica refuses them within a second (at the
next poll, ``key_refresh_interval``, without Redis).  Reactivation lets them
sign in again; revoked keys stay revoked.
"""

from __future__ import annotations

import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route

from gatehouse.errors import GatewayError
from gatehouse.identity.credentials import announce_identity_change, revoke_all_for
from gatehouse.identity.directory import Directory
from gatehouse.identity.keys import announce_key_change
from gatehouse.identity.scim_resources import (
    GROUP_SCHEMA,
    USER_SCHEMA,
    ScimError,
    apply_patch,
    group_fields,
    invalid,
    list_response,
    parse_filter,
    parse_paging,
    user_fields,
)
from gatehouse.identity.scim_schemas import resource_types, schemas, service_provider_config
from gatehouse.settings import Settings
from gatehouse.store import identity as store
from gatehouse.store.db import Database
from gatehouse.store.errors import StoreConflict, StoreError

CONTENT_TYPE = "application/scim+json"
Handler = Callable[[Request], Awaitable[Response]]


class ScimBackend(Protocol):
    """What SCIM needs from the running gateway (`gatehouse.app.Services` has it)."""

    settings: Settings

    @property
    def database(self) -> Database: ...

    @property
    def redis_url(self) -> str: ...


def scim_routes(services: ScimBackend) -> list[BaseRoute]:
    """The ``/scim/v2`` mount; reads the directory settings now, so a bad one stops start-up."""
    Directory.from_settings(services.settings)
    api = _Scim(services)
    routes = [
        Route("/Users", api.guard(api.list_users), methods=["GET"]),
        Route("/Users", api.guard(api.create_user), methods=["POST"]),
        Route("/Users/{id}", api.guard(api.get_user), methods=["GET"]),
        Route("/Users/{id}", api.guard(api.put_user), methods=["PUT"]),
        Route("/Users/{id}", api.guard(api.patch_user), methods=["PATCH"]),
        Route("/Users/{id}", api.guard(api.delete_user), methods=["DELETE"]),
        Route("/Groups", api.guard(api.list_groups), methods=["GET"]),
        Route("/Groups", api.guard(api.create_group), methods=["POST"]),
        Route("/Groups/{id}", api.guard(api.get_group), methods=["GET"]),
        Route("/Groups/{id}", api.guard(api.put_group), methods=["PUT"]),
        Route("/Groups/{id}", api.guard(api.patch_group), methods=["PATCH"]),
        Route("/Groups/{id}", api.guard(api.delete_group), methods=["DELETE"]),
        Route("/ServiceProviderConfig", api.guard(api.config), methods=["GET"]),
        Route("/ResourceTypes", api.guard(api.types), methods=["GET"]),
        Route("/Schemas", api.guard(api.schemas), methods=["GET"]),
        Route("/{rest:path}", api.guard(api.unknown)),
    ]
    return [Mount("/scim/v2", routes=routes)]


class _Scim:
    def __init__(self, services: ScimBackend) -> None:
        self.services = services

    # -- the envelope every route shares --

    def guard(self, handler: Handler) -> Handler:
        """Check the bearer token, then run ``handler``; every refusal is SCIM-shaped."""

        async def guarded(request: Request) -> Response:
            try:
                self._authorize(request)
                return await handler(request)
            except ScimError as exc:
                headers = {"www-authenticate": 'Bearer realm="gatehouse-scim"'}
                return _scim(exc.body(), exc.status, headers if exc.status == 401 else None)
            except StoreConflict as exc:
                return _scim(ScimError(409, exc.message, "uniqueness").body(), 409)
            except (StoreError, GatewayError) as exc:
                return _scim(ScimError(503, f"try again shortly: {exc.message}").body(), 503)

        return guarded

    def _authorize(self, request: Request) -> None:
        token = self.services.settings.scim_token
        if not token:
            raise ScimError(404, "SCIM is disabled on this gateway: set GATEHOUSE_SCIM_TOKEN")
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise ScimError(401, "SCIM needs 'Authorization: Bearer <GATEHOUSE_SCIM_TOKEN>'")
        if not hmac.compare_digest(presented.strip().encode(), token.encode()):
            raise ScimError(401, "the SCIM bearer token is wrong; check the IdP's API token")

    @property
    def db(self) -> Database:
        return self.services.database

    def _location(self, request: Request, kind: str, resource_id: str) -> str:
        base = self.services.settings.public_url.rstrip("/") or str(request.base_url).rstrip("/")
        return f"{base}/scim/v2/{kind}/{resource_id}"

    # -- users --

    async def list_users(self, request: Request) -> Response:
        start, count = parse_paging(request.query_params)
        wanted: dict[str, str] = {}
        if text := request.query_params.get("filter"):
            attribute, value = parse_filter(text, ("userName", "externalId"))
            wanted = {"user_name" if attribute == "userName" else "external_id": value}
        total, page = await store.find_users(self.db, start=start, count=count, **wanted)
        shown = [self._user(request, user) for user in page]
        return _scim(list_response(shown, total, start))

    async def create_user(self, request: Request) -> Response:
        fields = user_fields(await _body(request))
        now = _now()
        user = store.User(
            id=uuid.uuid4().hex,
            user_name=fields.user_name,
            display_name=fields.display_name,
            external_id=fields.external_id,
            active=fields.active,
            resource=fields.resource,
            created_at=now,
            updated_at=now,
            deactivated_at=None if fields.active else now,
        )
        try:
            await store.create_user(self.db, user)
        except StoreConflict:
            raise ScimError(409, f"userName {fields.user_name} exists", "uniqueness") from None
        await announce_identity_change(self.services.redis_url, f"user:{user.user_name}")
        body = self._user(request, user)
        return _scim(body, 201, {"location": body["meta"]["location"]})

    async def get_user(self, request: Request) -> Response:
        return _scim(self._user(request, await self._stored_user(request)))

    async def put_user(self, request: Request) -> Response:
        old = await self._stored_user(request)
        return await self._save_user(request, old, user_fields(await _body(request)))

    async def patch_user(self, request: Request) -> Response:
        old = await self._stored_user(request)
        document = dict(old.resource)
        document.setdefault("userName", old.user_name)
        patched = apply_patch(document, await _body(request))
        return await self._save_user(request, old, user_fields(patched))

    async def delete_user(self, request: Request) -> Response:
        gone = await store.delete_user(self.db, request.path_params["id"])
        if gone is None:
            raise _missing("User", request.path_params["id"])
        await self._deprovisioned(gone)
        return Response(status_code=204)

    async def _save_user(self, request: Request, old: store.User, fields: Any) -> Response:
        new = store.User(
            id=old.id,
            user_name=fields.user_name,
            display_name=fields.display_name,
            external_id=fields.external_id,
            active=fields.active,
            resource=fields.resource,
        )
        try:
            saved, gone = await store.save_user(self.db, new)
        except StoreConflict:
            raise ScimError(409, f"userName {fields.user_name} exists", "uniqueness") from None
        if gone is not None:
            await self._deprovisioned(gone)
        else:
            await announce_identity_change(self.services.redis_url, f"user:{saved.user_name}")
        return _scim(self._user(request, saved))

    async def _deprovisioned(self, gone: store.Deprovisioning) -> None:
        """Revoke what the user transaction could not, then tell every replica, then answer."""
        await revoke_all_for(self.db, gone.email)
        await announce_key_change(self.services.redis_url, f"user:{gone.email}")
        await announce_identity_change(self.services.redis_url, f"user:{gone.email}")

    async def _stored_user(self, request: Request) -> store.User:
        user = await store.get_user(self.db, request.path_params["id"])
        if user is None:
            raise _missing("User", request.path_params["id"])
        return user

    def _user(self, request: Request, user: store.User) -> dict[str, Any]:
        body = dict(user.resource)
        extensions = [k for k in body if k.lower().startswith("urn:") and isinstance(body[k], dict)]
        body["schemas"] = [USER_SCHEMA, *extensions]
        body["id"] = user.id
        body["active"] = user.active
        body["meta"] = _meta(
            "User", self._location(request, "Users", user.id), user.created_at, user.updated_at
        )
        return body

    # -- groups --

    async def list_groups(self, request: Request) -> Response:
        start, count = parse_paging(request.query_params)
        wanted: dict[str, str] = {}
        if text := request.query_params.get("filter"):
            attribute, value = parse_filter(text, ("displayName", "externalId"))
            wanted = {"display_name" if attribute == "displayName" else "external_id": value}
        total, page = await store.find_groups(self.db, start=start, count=count, **wanted)
        shown = [self._group(request, group) for group in page]
        return _scim(list_response(shown, total, start))

    async def create_group(self, request: Request) -> Response:
        name, external_id, members = group_fields(await _body(request))
        await self._check_members(members)
        now = _now()
        group = store.Group(
            id=uuid.uuid4().hex,
            display_name=name,
            external_id=external_id,
            members=tuple(members),
            created_at=now,
            updated_at=now,
        )
        try:
            await store.create_group(self.db, group)
        except StoreConflict:
            raise ScimError(409, f"group {name!r} exists", "uniqueness") from None
        await announce_identity_change(self.services.redis_url, f"group:{name}")
        body = self._group(request, group)
        return _scim(body, 201, {"location": body["meta"]["location"]})

    async def get_group(self, request: Request) -> Response:
        return _scim(self._group(request, await self._stored_group(request)))

    async def put_group(self, request: Request) -> Response:
        old = await self._stored_group(request)
        return await self._save_group(request, old, await _body(request))

    async def patch_group(self, request: Request) -> Response:
        old = await self._stored_group(request)
        document: dict[str, Any] = {
            "displayName": old.display_name,
            "members": [{"value": member} for member in old.members],
        }
        if old.external_id is not None:
            document["externalId"] = old.external_id
        return await self._save_group(request, old, apply_patch(document, await _body(request)))

    async def delete_group(self, request: Request) -> Response:
        if not await store.delete_group(self.db, request.path_params["id"]):
            raise _missing("Group", request.path_params["id"])
        await announce_identity_change(self.services.redis_url, "group")
        return Response(status_code=204)

    async def _save_group(self, request: Request, old: store.Group, document: object) -> Response:
        name, external_id, members = group_fields(document)
        await self._check_members(members)
        new = store.Group(
            id=old.id,
            display_name=name,
            external_id=external_id,
            members=tuple(members),
            created_at=old.created_at,
        )
        try:
            saved = await store.save_group(self.db, new)
        except StoreConflict:
            raise ScimError(409, f"group {name!r} exists", "uniqueness") from None
        await announce_identity_change(self.services.redis_url, f"group:{name}")
        return _scim(self._group(request, saved))

    async def _check_members(self, members: list[str]) -> None:
        unknown = set(members) - await store.existing_user_ids(self.db, members)
        if unknown:
            raise invalid(
                f"unknown member {sorted(unknown)[0]!r}: members must be provisioned Users "
                "(nested groups are not supported)"
            )

    async def _stored_group(self, request: Request) -> store.Group:
        group = await store.get_group(self.db, request.path_params["id"])
        if group is None:
            raise _missing("Group", request.path_params["id"])
        return group

    def _group(self, request: Request, group: store.Group) -> dict[str, Any]:
        body: dict[str, Any] = {
            "schemas": [GROUP_SCHEMA],
            "id": group.id,
            "displayName": group.display_name,
        }
        if group.external_id is not None:
            body["externalId"] = group.external_id
        excluded = request.query_params.get("excludedAttributes", "").lower().split(",")
        if "members" not in (name.strip() for name in excluded):
            body["members"] = [
                {"value": m, "$ref": self._location(request, "Users", m), "type": "User"}
                for m in group.members
            ]
        body["meta"] = _meta(
            "Group", self._location(request, "Groups", group.id), group.created_at, group.updated_at
        )
        return body

    # -- discovery --

    async def config(self, request: Request) -> Response:
        return _scim(service_provider_config(self._location(request, "", "").rstrip("/")))

    async def types(self, request: Request) -> Response:
        return _scim(resource_types())

    async def schemas(self, request: Request) -> Response:
        return _scim(schemas())

    async def unknown(self, request: Request) -> Response:
        raise ScimError(404, f"no SCIM resource at {request.url.path}")


def _meta(kind: str, location: str, created: float, modified: float) -> dict[str, str]:
    return {
        "resourceType": kind,
        "created": _iso(created),
        "lastModified": _iso(modified),
        "location": location,
        "version": f'W/"{int(modified * 1_000_000)}"',
    }


def _missing(kind: str, resource_id: str) -> ScimError:
    return ScimError(404, f"{kind} {resource_id} not found")


async def _body(request: Request) -> object:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise invalid("the request body is not JSON", "invalidSyntax") from None


def _scim(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type=CONTENT_TYPE, headers=headers
    )


def _now() -> float:
    return time.time()


def _iso(ts: float) -> str:
    return (
        datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )
