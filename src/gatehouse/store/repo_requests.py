"""Repository access requests in the database (table ``repo_requests``).

A request is pending until its repository's classification owner decides it;
the decision is a conditional update (``WHERE status = 'pending'``), so two
owners deciding at once cannot both win.  The approved rule itself lives in the
policy document (`gatehouse.store.policy`); this table keeps who asked, why,
and what was decided.  Driver errors become `StoreError` through the `Database`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa

from gatehouse.store.db import Database
from gatehouse.store.schema import repo_requests

PENDING, APPROVED, DENIED, WITHDRAWN = "pending", "approved", "denied", "withdrawn"
STATUSES = (PENDING, APPROVED, DENIED, WITHDRAWN)


@dataclass(frozen=True, slots=True)
class RepoRequest:
    """One developer's request for a repository, and the decision on it once made."""

    repository: str
    requested_by: str
    reason: str
    status: str = PENDING
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    created_at: float = field(default_factory=time.time)
    decided_by: str | None = None
    decided_at: float | None = None
    decision_reason: str | None = None
    classification: str | None = None
    paths: tuple[Mapping[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "repository": self.repository,
            "requested_by": self.requested_by,
            "reason": self.reason,
            "status": self.status,
            "created_at": _iso(self.created_at),
            "decided_by": self.decided_by,
            "decided_at": None if self.decided_at is None else _iso(self.decided_at),
            "decision_reason": self.decision_reason,
            "classification": self.classification,
            "paths": [dict(p) for p in self.paths],
        }


class RepoRequestStore:
    """What the access flow needs from the database, over one `Database`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, request: RepoRequest) -> RepoRequest:
        """Store a new request unless one is pending for the repository; the pending one if so.

        Check and insert share a transaction, so two developers asking at once
        leave one pending request (on PostgreSQL the loser may see `StoreError`
        from serialisation and can ask again).
        """
        pending = sa.select(repo_requests).where(
            repo_requests.c.repository == request.repository,
            repo_requests.c.status == PENDING,
        )
        async with self._db.transaction("store the repository request", conflict=True) as conn:
            found = (await conn.execute(pending.limit(1))).mappings().first()
            if found is not None:
                return _request(found)
            await conn.execute(repo_requests.insert().values(_row(request)))
        return request

    async def get(self, request_id: str) -> RepoRequest | None:
        query = sa.select(repo_requests).where(repo_requests.c.id == request_id)
        rows = await self._db.fetch_all(query, "read the repository request")
        return _request(rows[0]) if rows else None

    async def pending_for(self, repository: str) -> RepoRequest | None:
        query = sa.select(repo_requests).where(
            repo_requests.c.repository == repository, repo_requests.c.status == PENDING
        )
        rows = await self._db.fetch_all(query, "read the repository request")
        return _request(rows[0]) if rows else None

    async def find(
        self, *, status: str | None = None, requested_by: str | None = None, limit: int = 1000
    ) -> list[RepoRequest]:
        """Requests newest first, optionally of one status or one developer."""
        query = sa.select(repo_requests)
        if status is not None:
            query = query.where(repo_requests.c.status == status)
        if requested_by is not None:
            query = query.where(repo_requests.c.requested_by == requested_by)
        query = query.order_by(repo_requests.c.created_at.desc(), repo_requests.c.id.desc())
        rows = await self._db.fetch_all(query.limit(limit), "read repository requests")
        return [_request(row) for row in rows]

    async def decide(self, decided: RepoRequest) -> bool:
        """Record the decision on a pending request; ``False`` if it was no longer pending."""
        statement = (
            repo_requests.update()
            .where(repo_requests.c.id == decided.id, repo_requests.c.status == PENDING)
            .values(
                status=decided.status,
                decided_by=decided.decided_by,
                decided_at=decided.decided_at,
                decision_reason=decided.decision_reason,
                classification=decided.classification,
                paths_json=_paths_json(decided.paths),
            )
        )
        return await self._db.execute(statement, "record the decision") == 1

    async def reopen(self, request_id: str, status: str) -> None:
        """Put a request claimed with `decide` back to pending (the policy change failed)."""
        statement = (
            repo_requests.update()
            .where(repo_requests.c.id == request_id, repo_requests.c.status == status)
            .values(
                status=PENDING,
                decided_by=None,
                decided_at=None,
                decision_reason=None,
                classification=None,
                paths_json=None,
            )
        )
        await self._db.execute(statement, "reopen the repository request")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="seconds")


def _paths_json(paths: Sequence[Mapping[str, str]]) -> str | None:
    return orjson.dumps([dict(p) for p in paths]).decode() if paths else None


def _row(request: RepoRequest) -> dict[str, Any]:
    return {
        "id": request.id,
        "repository": request.repository,
        "requested_by": request.requested_by,
        "reason": request.reason,
        "status": request.status,
        "created_at": request.created_at,
        "decided_by": request.decided_by,
        "decided_at": request.decided_at,
        "decision_reason": request.decision_reason,
        "classification": request.classification,
        "paths_json": _paths_json(request.paths),
    }


def _request(row: sa.RowMapping) -> RepoRequest:
    paths = orjson.loads(row["paths_json"]) if row["paths_json"] else []
    return RepoRequest(
        id=row["id"],
        repository=row["repository"],
        requested_by=row["requested_by"],
        reason=row["reason"],
        status=row["status"],
        created_at=row["created_at"],
        decided_by=row["decided_by"],
        decided_at=row["decided_at"],
        decision_reason=row["decision_reason"],
        classification=row["classification"],
        paths=tuple(paths),
    )
