"""The audit store: content-addressed blocks, hash-chained records, search, retention.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

# pg_trgm speeds up substring search; a role that may not create extensions still
# gets the tsvector index, so a failure here is swallowed (a subtransaction).
_PG_TRGM = """
DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    NULL;
END
$$
"""
_PG_TRGM_INDEX = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        CREATE INDEX ix_audit_text_trgm ON audit_text USING gin (body gin_trgm_ops);
    END IF;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "audit_blocks",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("content", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False, server_default=""),
        sa.Column("first_ts", sa.Double, nullable=False),
    )
    op.create_table(
        "audit_records",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("ts", sa.Double, nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("chain", sa.String(200), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("developer", sa.String(320), nullable=False),
        sa.Column("team", sa.String(200), nullable=False),
        sa.Column("repository", sa.String(500), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("endpoint", sa.String(200), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_type", sa.String(64), nullable=False),
        sa.Column("usage_id", sa.String(32), nullable=False),
        sa.Column("cost_micros", sa.BigInteger, nullable=True),
        sa.Column("ttfb_ms", sa.Double, nullable=True),
        sa.Column("duration_ms", sa.Double, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("base_id", sa.String(40), nullable=True),
        sa.Column("base_len", sa.Integer, nullable=False),
        sa.Column("tail", sa.Text, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("guard", sa.String(16), nullable=False),
        sa.Column("findings", sa.Text, nullable=False),
        sa.Column("decision", sa.String(32), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_index("ix_audit_records_chain_seq", "audit_records", ["chain", "seq"], unique=True)
    op.create_index("ix_audit_records_ts", "audit_records", ["ts"])
    op.create_index("ix_audit_records_session_id", "audit_records", ["session_id"])
    op.create_index("ix_audit_records_developer", "audit_records", ["developer"])
    op.create_index("ix_audit_records_repository", "audit_records", ["repository"])
    op.create_index("ix_audit_records_team", "audit_records", ["team"])
    op.create_index("ix_audit_records_guard", "audit_records", ["guard"])
    op.create_table(
        "audit_block_sessions",
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("chain", sa.String(200), primary_key=True),
        sa.Column("record_id", sa.String(40), nullable=False),
        sa.Column("ts", sa.Double, nullable=False),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_audit_block_sessions_record_id", "audit_block_sessions", ["record_id"])
    op.create_index("ix_audit_block_sessions_chain", "audit_block_sessions", ["chain"])
    op.create_table(
        "audit_roots",
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("chains", sa.Integer, nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("heads", sa.Text, nullable=False),
        sa.Column("created_ts", sa.Double, nullable=False),
    )
    op.create_table(
        "audit_holds",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("value", sa.String(500), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(320), nullable=False),
        sa.Column("created_ts", sa.Double, nullable=False),
        sa.Column("released_by", sa.String(320), nullable=True),
        sa.Column("released_ts", sa.Double, nullable=True),
    )
    op.create_table(
        "audit_retention",
        sa.Column("scope", sa.String(16), primary_key=True),
        sa.Column("value", sa.String(500), primary_key=True),
        sa.Column("days", sa.Integer, nullable=False),
        sa.Column("set_by", sa.String(320), nullable=False),
        sa.Column("set_ts", sa.Double, nullable=False),
    )
    op.create_table(
        "audit_deletions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("chain", sa.String(200), nullable=False),
        sa.Column("through_seq", sa.Integer, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("blocks", sa.Integer, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("ts", sa.Double, nullable=False),
    )
    op.create_index("ix_audit_deletions_chain", "audit_deletions", ["chain"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TABLE audit_text ("
            " digest VARCHAR(64) PRIMARY KEY,"
            " body TEXT NOT NULL,"
            " tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED)"
        )
        op.execute("CREATE INDEX ix_audit_text_tsv ON audit_text USING gin (tsv)")
        op.execute(_PG_TRGM)
        op.execute(_PG_TRGM_INDEX)
    else:
        # rowid = gatehouse.audit.append.text_rowid(digest): no digest column to store.
        op.execute(
            "CREATE VIRTUAL TABLE audit_text USING fts5("
            "body, tokenize = 'unicode61', columnsize = 0)"
        )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS audit_text")
    op.drop_index("ix_audit_deletions_chain", table_name="audit_deletions")
    op.drop_table("audit_deletions")
    op.drop_table("audit_retention")
    op.drop_table("audit_holds")
    op.drop_table("audit_roots")
    op.drop_index("ix_audit_block_sessions_chain", table_name="audit_block_sessions")
    op.drop_index("ix_audit_block_sessions_record_id", table_name="audit_block_sessions")
    op.drop_table("audit_block_sessions")
    for name in ("guard", "team", "repository", "developer", "session_id", "ts", "chain_seq"):
        op.drop_index(f"ix_audit_records_{name}", table_name="audit_records")
    op.drop_table("audit_records")
    op.drop_table("audit_blocks")
