"""Guardrail coverage from the usage records: how many requests were screened, and how."""

from __future__ import annotations

import sqlalchemy as sa

from gatehouse.store.db import Database
from gatehouse.store.schema import usage_records


async def guard_verdicts(db: Database, since: float) -> dict[str, int]:
    """verdict → requests since ``since``, over requests that named a model.

    ``""`` is unscreened; ``refused`` was refused before screening (never sent).
    """
    query = (
        sa.select(usage_records.c.guard, sa.func.count().label("n"))
        .where(usage_records.c.ts >= since, usage_records.c.model_requested != "")
        .group_by(usage_records.c.guard)
    )
    rows = await db.fetch_all(query, "count guardrail verdicts")
    return {str(row["guard"]): int(row["n"]) for row in rows}
