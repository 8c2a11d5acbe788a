"""Policy: policy_versions (version 0 is the default deny-all policy) and its revision.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

# Policy().to_dict() as of this revision, written out so the migration never
# changes with the code (tests/unit/test_policy_store.py checks they agree).
DEFAULT_POLICY = (
    '{"mode":"enforce","observe_teams":[],"unattributed":"deny","contact":"",'
    '"owners":{},"repositories":{},"models":{"approved":[],"proposed":[]},"killswitches":[]}'
)


def upgrade() -> None:
    versions = op.create_table(
        "policy_versions",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("document", sa.Text, nullable=False),
        sa.Column("author", sa.String(320), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
    )
    op.bulk_insert(
        versions,
        [
            {
                "version": 0,
                "document": DEFAULT_POLICY,
                "author": "gatehouse",
                "reason": "default policy: enforce, no repository approved",
                "source": "file",
                "created_at": 0.0,
            }
        ],
    )
    revisions = sa.table(
        "revisions", sa.column("name", sa.String), sa.column("value", sa.BigInteger)
    )
    op.bulk_insert(revisions, [{"name": "policy", "value": 0}])


def downgrade() -> None:
    op.execute("DELETE FROM revisions WHERE name = 'policy'")
    op.drop_table("policy_versions")
