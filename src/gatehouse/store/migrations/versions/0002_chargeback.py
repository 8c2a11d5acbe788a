"""Chargeback: cost and pricing inputs on usage records; the events table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

_TEXT_COLUMNS = ("inference_geo", "service_tier", "speed", "cost_centre")


def upgrade() -> None:
    with op.batch_alter_table("usage_records") as batch:
        for name in _TEXT_COLUMNS:
            batch.add_column(sa.Column(name, sa.String, nullable=False, server_default=""))
        # NULL means "the model had no price": unknown, never zero.
        batch.add_column(sa.Column("cost_micros", sa.BigInteger, nullable=True))

    op.create_table(
        "events",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("developer", sa.String, nullable=False),
        sa.Column("team", sa.String, nullable=False),
        sa.Column("repository", sa.String, nullable=False),
        sa.Column("session_id", sa.String, nullable=False),
        sa.Column("subject", sa.String, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_events_ts", "events", ["ts"])
    op.create_index("ix_events_kind_ts", "events", ["kind", "ts"])


def downgrade() -> None:
    op.drop_index("ix_events_kind_ts", table_name="events")
    op.drop_index("ix_events_ts", table_name="events")
    op.drop_table("events")
    with op.batch_alter_table("usage_records") as batch:
        batch.drop_column("cost_micros")
        for name in reversed(_TEXT_COLUMNS):
            batch.drop_column(name)
