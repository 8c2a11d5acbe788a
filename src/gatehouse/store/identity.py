"""Users, groups and memberships as SCIM provisions them (tables ``users``, ``groups``,
``group_members``).

Every write bumps the ``identity`` revision in the same transaction, so each
gateway's poll sees it.  Deprovisioning a user (``active`` false, or deletion)
also revokes every key they own — their service keys included — bumps the
``keys`` revision and stores a ``user_deprovisioned``/``user_deleted`` event, all
in that one transaction: a gateway that reloads its keys sees the revocation and
its reason together.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from gatehouse.audit.append import record_admin_events
from gatehouse.events import Event
from gatehouse.identity.directory import Directory
from gatehouse.store.db import Database
from gatehouse.store.schema import (
    IDENTITY_REVISION,
    KEYS_REVISION,
    api_keys,
    event_to_row,
    events,
    group_members,
    groups,
    revisions,
    users,
)

DEPROVISIONED = "user_deprovisioned"
REACTIVATED = "user_reactivated"
DELETED = "user_deleted"


@dataclass(frozen=True, slots=True)
class User:
    """A provisioned human; ``resource`` is the SCIM document as the IdP last sent it."""

    id: str
    user_name: str  # lower-cased email
    display_name: str = ""
    external_id: str | None = None
    active: bool = True
    resource: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    updated_at: float = 0.0
    deactivated_at: float | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """An IdP group and the ids of its member users."""

    id: str
    display_name: str
    external_id: str | None = None
    members: tuple[str, ...] = ()
    created_at: float = 0.0
    updated_at: float = 0.0


@dataclass(frozen=True, slots=True)
class Deprovisioning:
    """What a deactivation or deletion revoked: key ids (service keys included)."""

    email: str
    key_ids: tuple[str, ...]
    services: tuple[str, ...]


# -- users ---------------------------------------------------------------------


async def create_user(db: Database, user: User) -> None:
    """Store a new user; `StoreConflict` if the userName is taken."""
    async with db.transaction("store the user", conflict=True) as conn:
        await conn.execute(users.insert().values(_user_row(user)))
        await _bump(conn, IDENTITY_REVISION)


async def get_user(db: Database, user_id: str) -> User | None:
    rows = await db.fetch_all(sa.select(users).where(users.c.id == user_id), "read the user")
    return _user(rows[0]) if rows else None


async def find_users(
    db: Database,
    *,
    user_name: str | None = None,
    external_id: str | None = None,
    start: int = 1,
    count: int | None = None,
) -> tuple[int, list[User]]:
    """``(totalResults, page)``: users matching the filters, oldest first, 1-based ``start``."""
    where: list[sa.ColumnElement[bool]] = []
    if user_name is not None:
        where.append(users.c.user_name == user_name.strip().lower())
    if external_id is not None:
        where.append(users.c.external_id == external_id)
    total = await db.fetch_all(
        sa.select(sa.func.count().label("n")).select_from(users).where(*where), "count users"
    )
    query = (
        sa.select(users)
        .where(*where)
        .order_by(users.c.created_at, users.c.id)
        .offset(max(start, 1) - 1)
    )
    if count is not None:
        query = query.limit(max(count, 0))
    rows = await db.fetch_all(query, "list users")
    return int(total[0]["n"]), [_user(row) for row in rows]


async def save_user(
    db: Database, user: User, *, now: float | None = None
) -> tuple[User, Deprovisioning | None]:
    """Replace a stored user (same id); `StoreConflict` if the new userName is taken.

    Going from active to inactive deprovisions them (see the module docstring);
    going back to active only lets them sign in again — revoked keys stay revoked.
    """
    stamp = time.time() if now is None else now
    async with db.transaction("update the user", conflict=True) as conn:
        # FOR UPDATE (PostgreSQL): two concurrent deactivations deprovision once.
        query = sa.select(users).where(users.c.id == user.id).with_for_update()
        before = (await conn.execute(query)).mappings()
        row = before.first()
        if row is None:
            raise LookupError(user.id)
        old = _user(row)
        deactivating = old.active and not user.active
        if deactivating:
            user = replace(user, deactivated_at=stamp)
        elif user.active:
            user = replace(user, deactivated_at=None)
        else:
            user = replace(user, deactivated_at=old.deactivated_at)
        user = replace(user, created_at=old.created_at, updated_at=stamp)
        await conn.execute(users.update().where(users.c.id == user.id).values(_user_row(user)))
        gone = None
        if deactivating:
            gone = await _revoke_keys(conn, old.user_name, stamp, DEPROVISIONED)
        elif user.active and not old.active:
            await _event(conn, REACTIVATED, user.user_name, "reactivated by the IdP (SCIM)", {})
        await _bump(conn, IDENTITY_REVISION)
    return user, gone


async def delete_user(
    db: Database, user_id: str, *, now: float | None = None
) -> Deprovisioning | None:
    """Delete a user and their memberships, revoking their keys; ``None`` if unknown."""
    stamp = time.time() if now is None else now
    async with db.transaction("delete the user") as conn:
        found = (await conn.execute(sa.select(users).where(users.c.id == user_id))).mappings()
        row = found.first()
        if row is None:
            return None
        await conn.execute(group_members.delete().where(group_members.c.user_id == user_id))
        await conn.execute(users.delete().where(users.c.id == user_id))
        gone = await _revoke_keys(conn, row["user_name"], stamp, DELETED)
        await _bump(conn, IDENTITY_REVISION)
    return gone


async def deprovisioned(db: Database) -> dict[str, float]:
    """Email → when it was deprovisioned, for humans the IdP deactivated or deleted.

    A deleted human counts until a user with that userName is provisioned again.
    The key snapshot reads this to refuse with the reason, not just "revoked".
    """
    inactive = await db.fetch_all(
        sa.select(users.c.user_name, users.c.active, users.c.deactivated_at), "read users"
    )
    known = {row["user_name"] for row in inactive}
    out = {
        row["user_name"]: float(row["deactivated_at"] or 0.0)
        for row in inactive
        if not row["active"]
    }
    deleted = await db.fetch_all(
        sa.select(events.c.developer, sa.func.max(events.c.ts).label("ts"))
        .where(events.c.kind == DELETED)
        .group_by(events.c.developer),
        "read deleted users",
    )
    for row in deleted:
        if row["developer"] not in known:
            out[row["developer"]] = float(row["ts"])
    return out


async def lookup(
    db: Database, email: str, directory: Directory | None = None
) -> tuple[str, tuple[str, ...], bool] | None:
    """``(team, roles, active)`` for a provisioned human, from their groups; ``None`` if unknown.

    Team and roles come from ``directory`` (role map and team prefix from settings);
    without one, no group grants a role and teams use the default ``team-`` prefix.
    """
    directory = directory or Directory()
    rows = await db.fetch_all(
        sa.select(users.c.id, users.c.active).where(users.c.user_name == email.strip().lower()),
        "look up the user",
    )
    if not rows:
        return None
    names = await group_names(db, rows[0]["id"])
    return directory.team_for(names), directory.roles_for(names), bool(rows[0]["active"])


async def group_names(db: Database, user_id: str) -> list[str]:
    """Display names of the groups ``user_id`` is a member of."""
    query = (
        sa.select(groups.c.display_name)
        .join(group_members, group_members.c.group_id == groups.c.id)
        .where(group_members.c.user_id == user_id)
        .order_by(groups.c.display_name)
    )
    return [row["display_name"] for row in await db.fetch_all(query, "read the user's groups")]


async def groups_of(db: Database, email: str) -> list[str]:
    """Display names of the groups of the active human ``email``; empty if unknown or inactive."""
    query = (
        sa.select(groups.c.display_name)
        .join(group_members, group_members.c.group_id == groups.c.id)
        .join(users, users.c.id == group_members.c.user_id)
        .where(users.c.user_name == email.strip().lower(), users.c.active.is_(True))
        .order_by(groups.c.display_name)
    )
    return [row["display_name"] for row in await db.fetch_all(query, "read the user's groups")]


# -- groups --------------------------------------------------------------------


async def create_group(db: Database, group: Group) -> None:
    """Store a new group and its members; `StoreConflict` if the displayName is taken."""
    async with db.transaction("store the group", conflict=True) as conn:
        await conn.execute(groups.insert().values(_group_row(group)))
        await _set_members(conn, group.id, group.members)
        await _bump(conn, IDENTITY_REVISION)


async def get_group(db: Database, group_id: str) -> Group | None:
    rows = await db.fetch_all(sa.select(groups).where(groups.c.id == group_id), "read the group")
    if not rows:
        return None
    return (await _with_members(db, rows))[0]


async def find_groups(
    db: Database,
    *,
    display_name: str | None = None,
    external_id: str | None = None,
    start: int = 1,
    count: int | None = None,
) -> tuple[int, list[Group]]:
    """``(totalResults, page)``: groups matching the filters, oldest first."""
    where: list[sa.ColumnElement[bool]] = []
    if display_name is not None:
        where.append(groups.c.display_name == display_name)
    if external_id is not None:
        where.append(groups.c.external_id == external_id)
    total = await db.fetch_all(
        sa.select(sa.func.count().label("n")).select_from(groups).where(*where), "count groups"
    )
    query = (
        sa.select(groups)
        .where(*where)
        .order_by(groups.c.created_at, groups.c.id)
        .offset(max(start, 1) - 1)
    )
    if count is not None:
        query = query.limit(max(count, 0))
    return int(total[0]["n"]), await _with_members(db, await db.fetch_all(query, "list groups"))


async def save_group(db: Database, group: Group, *, now: float | None = None) -> Group:
    """Replace a stored group's name, externalId and members."""
    stamp = time.time() if now is None else now
    async with db.transaction("update the group", conflict=True) as conn:
        values = _group_row(group)
        del values["created_at"]
        values["updated_at"] = stamp
        changed = await conn.execute(groups.update().where(groups.c.id == group.id).values(values))
        if changed.rowcount != 1:
            raise LookupError(group.id)
        await _set_members(conn, group.id, group.members)
        await _bump(conn, IDENTITY_REVISION)
    return replace(group, updated_at=stamp)


async def delete_group(db: Database, group_id: str) -> bool:
    async with db.transaction("delete the group") as conn:
        await conn.execute(group_members.delete().where(group_members.c.group_id == group_id))
        if (await conn.execute(groups.delete().where(groups.c.id == group_id))).rowcount != 1:
            return False
        await _bump(conn, IDENTITY_REVISION)
    return True


async def existing_user_ids(db: Database, ids: Sequence[str]) -> set[str]:
    if not ids:
        return set()
    rows = await db.fetch_all(
        sa.select(users.c.id).where(users.c.id.in_(list(ids))), "check group members"
    )
    return {row["id"] for row in rows}


# -- internals -----------------------------------------------------------------


async def _revoke_keys(
    conn: AsyncConnection, email: str, stamp: float, kind: str
) -> Deprovisioning:
    owned = sa.and_(sa.func.lower(api_keys.c.email) == email, api_keys.c.revoked_at.is_(None))
    rows = (await conn.execute(sa.select(api_keys.c.id, api_keys.c.service).where(owned))).all()
    await conn.execute(api_keys.update().where(owned).values(revoked_at=stamp))
    # Bumped even when no key was live: gateways reload their keys together with the reason.
    await _bump(conn, KEYS_REVISION)
    gone = Deprovisioning(
        email=email,
        key_ids=tuple(row.id for row in rows),
        services=tuple(row.service for row in rows if row.service),
    )
    how = "deactivated" if kind == DEPROVISIONED else "deleted"
    await _event(
        conn,
        kind,
        email,
        f"{how} by the IdP (SCIM): {len(gone.key_ids)} key(s) revoked"
        + (f", service keys {', '.join(gone.services)}" if gone.services else ""),
        {"key_ids": list(gone.key_ids), "services": list(gone.services)},
        severity="warning",
        ts=stamp,
    )
    return gone


async def _event(
    conn: AsyncConnection,
    kind: str,
    email: str,
    subject: str,
    detail: dict[str, Any],
    *,
    severity: str = "info",
    ts: float | None = None,
) -> None:
    event = Event(kind=kind, subject=f"{email} {subject}", developer=email, severity=severity)
    event.detail = detail
    if ts is not None:
        event.ts = ts
    await conn.execute(events.insert().values(event_to_row(event)))
    await record_admin_events(conn, [event])


async def _set_members(conn: AsyncConnection, group_id: str, members: Sequence[str]) -> None:
    await conn.execute(group_members.delete().where(group_members.c.group_id == group_id))
    unique = list(dict.fromkeys(members))
    if unique:
        await conn.execute(
            group_members.insert(), [{"group_id": group_id, "user_id": m} for m in unique]
        )


async def _with_members(db: Database, rows: Sequence[sa.RowMapping]) -> list[Group]:
    ids = [row["id"] for row in rows]
    members: dict[str, list[str]] = {gid: [] for gid in ids}
    if ids:
        query = (
            sa.select(group_members)
            .where(group_members.c.group_id.in_(ids))
            .order_by(group_members.c.user_id)
        )
        for row in await db.fetch_all(query, "read group members"):
            members[row["group_id"]].append(row["user_id"])
    return [
        Group(
            id=row["id"],
            display_name=row["display_name"],
            external_id=row["external_id"],
            members=tuple(members[row["id"]]),
            created_at=row["created_at"],
            updated_at=row["updated_at"],
        )
        for row in rows
    ]


async def _bump(conn: AsyncConnection, name: str) -> None:
    await conn.execute(
        revisions.update().where(revisions.c.name == name).values(value=revisions.c.value + 1)
    )


def _user_row(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "user_name": user.user_name.strip().lower(),
        "external_id": user.external_id,
        "display_name": user.display_name,
        "active": user.active,
        "resource": orjson.dumps(user.resource).decode(),
        "created_at": user.created_at,
        "updated_at": user.updated_at,
        "deactivated_at": user.deactivated_at,
    }


def _user(row: sa.RowMapping) -> User:
    return User(
        id=row["id"],
        user_name=row["user_name"],
        display_name=row["display_name"],
        external_id=row["external_id"],
        active=bool(row["active"]),
        resource=orjson.loads(row["resource"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        deactivated_at=row["deactivated_at"],
    )


def _group_row(group: Group) -> dict[str, Any]:
    return {
        "id": group.id,
        "display_name": group.display_name,
        "external_id": group.external_id,
        "created_at": group.created_at,
        "updated_at": group.updated_at,
    }
