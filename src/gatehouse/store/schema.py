"""The database schema, in SQLAlchemy Core.

This is the source of truth the Alembic migrations in ``migrations/versions``
are written to match; ``tests/services/test_database.py`` checks that a
migrated database has exactly these tables, columns and indexes.
"""

from __future__ import annotations

from typing import Any

import orjson
import sqlalchemy as sa

from gatehouse.events import Event
from gatehouse.identity.principal import ApiKey
from gatehouse.ledger.usage import UsageRecord

metadata = sa.MetaData()

KEYS_REVISION = "keys"
"""Name of the ``revisions`` row bumped with every change to ``api_keys``."""

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("team", sa.String(200), nullable=False),
    sa.Column("roles", sa.String(500), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=True),
    sa.Column("revoked_at", sa.Double, nullable=True),
    # A service key names the automation it is for; its usage still belongs to `email`.
    sa.Column("service", sa.String(200), nullable=False, server_default=""),
    sa.Index("ix_api_keys_digest", "digest", unique=True),
)

# One tiny row per snapshot that gateways keep in memory: a gateway polls the
# value and reloads the snapshot only when it changed.
revisions = sa.Table(
    "revisions",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
)

usage_records = sa.Table(
    "usage_records",
    metadata,
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
    sa.Column("inference_geo", sa.String, nullable=False, server_default=""),
    sa.Column("service_tier", sa.String, nullable=False, server_default=""),
    sa.Column("speed", sa.String, nullable=False, server_default=""),
    sa.Column("cost_centre", sa.String, nullable=False, server_default=""),
    sa.Column("cost_micros", sa.BigInteger, nullable=True),
    # The guardrail verdict ("" when not screened: coverage is screened / total).
    sa.Column("guard", sa.String(16), nullable=False, server_default=""),
    sa.Column("guard_findings", sa.Integer, nullable=False, server_default="0"),
    sa.Index("ix_usage_records_ts", "ts"),
    sa.Index("ix_usage_records_session_id", "session_id"),
    sa.Index("ix_usage_records_developer_ts", "developer", "ts"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("developer", sa.String, nullable=False),
    sa.Column("team", sa.String, nullable=False),
    sa.Column("repository", sa.String, nullable=False),
    sa.Column("session_id", sa.String, nullable=False),
    sa.Column("subject", sa.String, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON
    sa.Index("ix_events_ts", "ts"),
    sa.Index("ix_events_kind_ts", "kind", "ts"),
)


def key_to_row(key: ApiKey) -> dict[str, Any]:
    if any("," in role or not role for role in key.roles):
        raise ValueError(f"roles must be non-empty and free of commas: {key.roles!r}")
    return {
        "id": key.id,
        "digest": key.digest,
        "email": key.email,
        "team": key.team,
        "roles": ",".join(key.roles),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "service": key.service,
    }


def row_to_key(row: sa.RowMapping) -> ApiKey:
    return ApiKey(
        id=row["id"],
        digest=row["digest"],
        email=row["email"],
        team=row["team"],
        roles=tuple(role for role in row["roles"].split(",") if role),
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        service=row["service"],
    )


_USAGE_COLUMNS = tuple(column.name for column in usage_records.columns)


def usage_to_tuple(record: UsageRecord) -> tuple[Any, ...]:
    """The record's values in ``usage_records`` column order."""
    return tuple(_clean(getattr(record, name)) for name in _USAGE_COLUMNS)


def _clean(value: Any) -> Any:
    # PostgreSQL rejects NUL in text; a model name from a request body could
    # carry one, and a record that can never be stored would stall the spool.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def row_to_usage(row: sa.RowMapping) -> UsageRecord:
    return UsageRecord(**dict(row))


def event_to_row(event: Event) -> dict[str, Any]:
    row = {name: _clean(value) for name, value in event.to_dict().items()}
    row["detail"] = _clean(orjson.dumps(event.detail, default=str).decode())
    return row


def row_to_event(row: sa.RowMapping) -> Event:
    data = dict(row)
    data["detail"] = orjson.loads(data["detail"])
    return Event.from_dict(data)


BUDGETS_REVISION = "budgets"
"""Name of the ``revisions`` row bumped with every change to budgets or their exceptions."""

# Budgets and their exceptions (ledger/budgets.py); money in integer micro-dollars.
budgets = sa.Table(
    "budgets",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),  # developer | team | repository
    sa.Column("name", sa.String(500), nullable=False),
    sa.Column("monthly_micros", sa.BigInteger, nullable=False),
    sa.Column("daily_micros", sa.BigInteger, nullable=True),
    sa.Column("soft_permille", sa.Integer, nullable=False),
    sa.Column("hard_permille", sa.Integer, nullable=False),
    sa.Column("webhook_url", sa.String(2000), nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("updated_by", sa.String(320), nullable=False),
    sa.Index("ix_budgets_scope_name", "scope", "name", unique=True),
)

budget_exceptions = sa.Table(
    "budget_exceptions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("budget_id", sa.String(32), nullable=False),
    sa.Column("amount_micros", sa.BigInteger, nullable=False),
    sa.Column("until", sa.Double, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("granted_by", sa.String(320), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double, nullable=True),
    sa.Index("ix_budget_exceptions_budget_id", "budget_id"),
)

# One row per alert sent: the primary key is the "once per threshold per period"
# claim every replica races for (a conflict means another one sends it).
budget_alerts = sa.Table(
    "budget_alerts",
    metadata,
    sa.Column("budget_id", sa.String(32), primary_key=True),
    sa.Column("period", sa.String(10), primary_key=True),  # 2026-11 or 2026-11-27
    sa.Column("threshold", sa.String(8), primary_key=True),  # soft | hard
    sa.Column("limit_micros", sa.BigInteger, primary_key=True),  # a raised limit re-arms
    sa.Column("ts", sa.Double, nullable=False),
    sa.Column("spend_micros", sa.BigInteger, nullable=False),
)


IDENTITY_REVISION = "identity"
"""Bumped with every change to users, groups, memberships or login credentials, so
every gateway reloads who is active and which credentials are revoked."""

# SCIM resources (identity/scim.py).  ``resource`` keeps the whole SCIM document as
# JSON so attributes Gatehouse does not model round-trip unchanged.
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("user_name", sa.String(320), nullable=False),  # lower-cased email
    sa.Column("external_id", sa.String(200), nullable=True),
    sa.Column("display_name", sa.String(320), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("resource", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("deactivated_at", sa.Double, nullable=True),
    sa.Index("ix_users_user_name", "user_name", unique=True),
)

groups = sa.Table(
    "groups",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("display_name", sa.String(320), nullable=False),
    sa.Column("external_id", sa.String(200), nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Index("ix_groups_display_name", "display_name", unique=True),
)

group_members = sa.Table(
    "group_members",
    metadata,
    sa.Column("group_id", sa.String(64), primary_key=True),
    sa.Column("user_id", sa.String(64), primary_key=True),
    sa.Index("ix_group_members_user_id", "user_id"),
)

# Long-lived login credentials from `gatehouse login` (device flow); only digests.
credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("digest", sa.String(128), nullable=False),
    sa.Column("email", sa.String(320), nullable=False),
    sa.Column("client", sa.String(500), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("last_used_at", sa.Double, nullable=True),
    sa.Column("expires_at", sa.Double, nullable=True),
    sa.Column("revoked_at", sa.Double, nullable=True),
    sa.Index("ix_credentials_digest", "digest", unique=True),
    sa.Index("ix_credentials_email", "email"),
)

# RFC 8628 device authorizations in progress, shared by every replica.
device_grants = sa.Table(
    "device_grants",
    metadata,
    sa.Column("device_code_digest", sa.String(128), primary_key=True),
    sa.Column("user_code", sa.String(16), nullable=False),
    sa.Column("client", sa.String(500), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending|approved|denied|consumed
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("credential_id", sa.String(32), nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("interval", sa.Integer, nullable=False),
    sa.Column("last_polled_at", sa.Double, nullable=True),
    sa.Index("ix_device_grants_user_code", "user_code", unique=True),
)

# Developers' requests for a repository on the allow-list, and the owner's decision
# (policy/requests.py).  The approved rule itself lives in the policy document.
repo_requests = sa.Table(
    "repo_requests",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("repository", sa.String(500), nullable=False),  # host/owner/name
    sa.Column("requested_by", sa.String(320), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending|approved|denied|withdrawn
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("decided_by", sa.String(320), nullable=True),
    sa.Column("decided_at", sa.Double, nullable=True),
    sa.Column("decision_reason", sa.Text, nullable=True),
    sa.Column("classification", sa.String(16), nullable=True),
    sa.Column("paths_json", sa.Text, nullable=True),  # [{glob, action, name}] as approved
    sa.Index("ix_repo_requests_repository_status", "repository", "status"),
)


POLICY_REVISION = "policy"
"""Bumped with every new policy version, so every gateway reloads its snapshot."""

# Every version of the whole policy document (policy/document.py) as JSON; the
# newest row is in force.  Version 0 is the default (enforce, deny everything),
# written by the migration.  Changes from the API, the CLI and files share it.
policy_versions = sa.Table(
    "policy_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("document", sa.Text, nullable=False),  # JSON, Policy.to_dict()
    sa.Column("author", sa.String(320), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # api | cli | file
    sa.Column("created_at", sa.Double, nullable=False),
)


# The audit store (audit/): content-addressed blocks, one envelope per request or
# administrative action, hash-chained per session.  The full contract, including
# ``audit_text`` (an FTS5 table on SQLite, a tsvector table on PostgreSQL, so not
# declared here), is in the docstring of ``gatehouse/audit/__init__.py``.
AUDIT_TEXT = "audit_text"

audit_blocks = sa.Table(
    "audit_blocks",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),  # sha256 of the canonical bytes
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),  # plaintext length
    sa.Column("content", sa.LargeBinary, nullable=False),  # canonical bytes or nonce||AES-GCM
    sa.Column("key_id", sa.String(32), nullable=False, server_default=""),  # '' = plaintext
    sa.Column("first_ts", sa.Double, nullable=False),
)

audit_records = sa.Table(
    "audit_records",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # request | admin
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
    sa.Column("params", sa.Text, nullable=False),  # JSON
    sa.Column("headers", sa.Text, nullable=False),  # JSON
    sa.Column("base_id", sa.String(40), nullable=True),
    sa.Column("base_len", sa.Integer, nullable=False),
    sa.Column("tail", sa.Text, nullable=False),  # JSON [[path, digest], ...]
    sa.Column("response", sa.Text, nullable=False),  # JSON [[path, digest], ...]
    sa.Column("guard", sa.String(16), nullable=False),
    sa.Column("findings", sa.Text, nullable=False),  # JSON
    sa.Column("decision", sa.String(32), nullable=False),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(320), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("detail", sa.Text, nullable=False),  # JSON
    sa.Index("ix_audit_records_chain_seq", "chain", "seq", unique=True),
    sa.Index("ix_audit_records_ts", "ts"),
    sa.Index("ix_audit_records_session_id", "session_id"),
    sa.Index("ix_audit_records_developer", "developer"),
    sa.Index("ix_audit_records_repository", "repository"),
    sa.Index("ix_audit_records_team", "team"),
    sa.Index("ix_audit_records_guard", "guard"),
)

audit_block_sessions = sa.Table(
    "audit_block_sessions",
    metadata,
    sa.Column("digest", sa.String(64), primary_key=True),
    sa.Column("chain", sa.String(200), primary_key=True),
    sa.Column("record_id", sa.String(40), nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Index("ix_audit_block_sessions_record_id", "record_id"),
    sa.Index("ix_audit_block_sessions_chain", "chain"),
    sqlite_with_rowid=False,  # the key holds record_id: a search reaches it in one lookup
)

audit_roots = sa.Table(
    "audit_roots",
    metadata,
    sa.Column("day", sa.String(10), primary_key=True),  # YYYY-MM-DD, UTC
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("chains", sa.Integer, nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("heads", sa.Text, nullable=False),  # JSON {chain: [seq, hash]} at the day's end
    sa.Column("created_ts", sa.Double, nullable=False),
)

audit_holds = sa.Table(
    "audit_holds",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("scope", sa.String(16), nullable=False),  # developer | session | repository
    sa.Column("value", sa.String(500), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_by", sa.String(320), nullable=False),
    sa.Column("created_ts", sa.Double, nullable=False),
    sa.Column("released_by", sa.String(320), nullable=True),
    sa.Column("released_ts", sa.Double, nullable=True),
)

audit_retention = sa.Table(
    "audit_retention",
    metadata,
    sa.Column("scope", sa.String(16), primary_key=True),  # team | repository
    sa.Column("value", sa.String(500), primary_key=True),
    sa.Column("days", sa.Integer, nullable=False),
    sa.Column("set_by", sa.String(320), nullable=False),
    sa.Column("set_ts", sa.Double, nullable=False),
)

audit_deletions = sa.Table(
    "audit_deletions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("chain", sa.String(200), nullable=False),
    sa.Column("through_seq", sa.Integer, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("blocks", sa.Integer, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("ts", sa.Double, nullable=False),
    sa.Index("ix_audit_deletions_chain", "chain"),
)


def compared(name: str | None, type_: str, _parents: Any) -> bool:
    """Alembic ``include_name``: leave out the search index, which differs per dialect.

    ``audit_text`` is an FTS5 virtual table (with its ``audit_text_*`` shadow
    tables; its rowid derives from the block digest) on SQLite and a table with
    a generated tsvector on PostgreSQL.
    """
    return not (type_ == "table" and name is not None and name.startswith(AUDIT_TEXT))
