"""Budgets: budgets, budget_exceptions, budget_alerts and the budgets revision.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "budgets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("monthly_micros", sa.BigInteger, nullable=False),
        sa.Column("daily_micros", sa.BigInteger, nullable=True),
        sa.Column("soft_permille", sa.Integer, nullable=False),
        sa.Column("hard_permille", sa.Integer, nullable=False),
        sa.Column("webhook_url", sa.String(2000), nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("updated_by", sa.String(320), nullable=False),
    )
    op.create_index("ix_budgets_scope_name", "budgets", ["scope", "name"], unique=True)

    op.create_table(
        "budget_exceptions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("budget_id", sa.String(32), nullable=False),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
        sa.Column("until", sa.Double, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("granted_by", sa.String(320), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("revoked_at", sa.Double, nullable=True),
    )
    op.create_index("ix_budget_exceptions_budget_id", "budget_exceptions", ["budget_id"])

    op.create_table(
        "budget_alerts",
        sa.Column("budget_id", sa.String(32), primary_key=True),
        sa.Column("period", sa.String(10), primary_key=True),
        sa.Column("threshold", sa.String(8), primary_key=True),
        sa.Column("limit_micros", sa.BigInteger, primary_key=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("spend_micros", sa.BigInteger, nullable=False),
    )

    revisions = sa.table(
        "revisions", sa.column("name", sa.String), sa.column("value", sa.BigInteger)
    )
    op.bulk_insert(revisions, [{"name": "budgets", "value": 0}])


def downgrade() -> None:
    op.execute("DELETE FROM revisions WHERE name = 'budgets'")
    op.drop_table("budget_alerts")
    op.drop_index("ix_budget_exceptions_budget_id", table_name="budget_exceptions")
    op.drop_table("budget_exceptions")
    op.drop_index("ix_budgets_scope_name", table_name="budgets")
    op.drop_table("budgets")
