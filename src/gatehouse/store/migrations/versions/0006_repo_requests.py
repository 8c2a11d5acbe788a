"""Repository access requests: the self-serve allow-list flow (policy/requests.py).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "repo_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("repository", sa.String(500), nullable=False),
        sa.Column("requested_by", sa.String(320), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("decided_by", sa.String(320), nullable=True),
        sa.Column("decided_at", sa.Double, nullable=True),
        sa.Column("decision_reason", sa.Text, nullable=True),
        sa.Column("classification", sa.String(16), nullable=True),
        sa.Column("paths_json", sa.Text, nullable=True),
    )
    op.create_index("ix_repo_requests_repository_status", "repo_requests", ["repository", "status"])


def downgrade() -> None:
    op.drop_index("ix_repo_requests_repository_status", table_name="repo_requests")
    op.drop_table("repo_requests")
