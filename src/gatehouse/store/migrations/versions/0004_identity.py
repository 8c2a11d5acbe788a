"""Identity: SCIM users and groups, login credentials, device grants, service keys.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_name", sa.String(320), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("display_name", sa.String(320), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("resource", sa.Text, nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("deactivated_at", sa.Double, nullable=True),
    )
    op.create_index("ix_users_user_name", "users", ["user_name"], unique=True)
    op.create_table(
        "groups",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(320), nullable=False),
        sa.Column("external_id", sa.String(200), nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_index("ix_groups_display_name", "groups", ["display_name"], unique=True)
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_group_members_user_id", "group_members", ["user_id"])
    op.create_table(
        "credentials",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("client", sa.String(500), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("last_used_at", sa.Double, nullable=True),
        sa.Column("expires_at", sa.Double, nullable=True),
        sa.Column("revoked_at", sa.Double, nullable=True),
    )
    op.create_index("ix_credentials_digest", "credentials", ["digest"], unique=True)
    op.create_index("ix_credentials_email", "credentials", ["email"])
    op.create_table(
        "device_grants",
        sa.Column("device_code_digest", sa.String(128), primary_key=True),
        sa.Column("user_code", sa.String(16), nullable=False),
        sa.Column("client", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("credential_id", sa.String(32), nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("expires_at", sa.Double, nullable=False),
        sa.Column("interval", sa.Integer, nullable=False),
        sa.Column("last_polled_at", sa.Double, nullable=True),
    )
    op.create_index("ix_device_grants_user_code", "device_grants", ["user_code"], unique=True)
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("service", sa.String(200), nullable=False, server_default=""))
    revisions = sa.table(
        "revisions", sa.column("name", sa.String), sa.column("value", sa.BigInteger)
    )
    op.bulk_insert(revisions, [{"name": "identity", "value": 0}])


def downgrade() -> None:
    op.execute("DELETE FROM revisions WHERE name = 'identity'")
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("service")
    op.drop_index("ix_device_grants_user_code", table_name="device_grants")
    op.drop_table("device_grants")
    op.drop_index("ix_credentials_email", table_name="credentials")
    op.drop_index("ix_credentials_digest", table_name="credentials")
    op.drop_table("credentials")
    op.drop_index("ix_group_members_user_id", table_name="group_members")
    op.drop_table("group_members")
    op.drop_index("ix_groups_display_name", table_name="groups")
    op.drop_table("groups")
    op.drop_index("ix_users_user_name", table_name="users")
    op.drop_table("users")
