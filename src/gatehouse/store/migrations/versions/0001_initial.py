"""Initial schema: api_keys, revisions, usage_records.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("team", sa.String(200), nullable=False),
        sa.Column("roles", sa.String(500), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=True),
        sa.Column("revoked_at", sa.Double, nullable=True),
    )
    op.create_index("ix_api_keys_digest", "api_keys", ["digest"], unique=True)

    revisions = op.create_table(
        "revisions",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(revisions, [{"name": "keys", "value": 0}])

    op.create_table(
        "usage_records",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("key_id", sa.String, nullable=False),
        sa.Column("developer", sa.String, nullable=False),
        sa.Column("team", sa.String, nullable=False),
        sa.Column("repository", sa.String, nullable=False),
        sa.Column("repository_source", sa.String, nullable=False),
        sa.Column("session_id", sa.String, nullable=False),
        sa.Column("client", sa.String, nullable=False),
        sa.Column("client_version", sa.String, nullable=False),
        sa.Column("request_class", sa.String, nullable=False),
        sa.Column("endpoint", sa.String, nullable=False),
        sa.Column("model_requested", sa.String, nullable=False),
        sa.Column("model_served", sa.String, nullable=False),
        sa.Column("streamed", sa.Boolean, nullable=False),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_creation_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_read_input_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_creation_5m_tokens", sa.BigInteger, nullable=False),
        sa.Column("cache_creation_1h_tokens", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_type", sa.String, nullable=False),
        sa.Column("stop_reason", sa.String, nullable=False),
        sa.Column("ttfb_ms", sa.Double, nullable=True),
        sa.Column("duration_ms", sa.Double, nullable=False),
        sa.Column("upstream_request_id", sa.String, nullable=False),
        sa.Column("client_disconnected", sa.Boolean, nullable=False),
    )
    op.create_index("ix_usage_records_ts", "usage_records", ["ts"])
    op.create_index("ix_usage_records_session_id", "usage_records", ["session_id"])
    op.create_index("ix_usage_records_developer_ts", "usage_records", ["developer", "ts"])


def downgrade() -> None:
    op.drop_table("usage_records")
    op.drop_table("revisions")
    op.drop_index("ix_api_keys_digest", table_name="api_keys")
    op.drop_table("api_keys")
