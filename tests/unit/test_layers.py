"""Layers import only downward (STYLE.md): pure decisions never import I/O or the app."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "src" / "gatehouse"

PURE_LEDGER = (
    "gatehouse.store",
    "gatehouse.proxy",
    "gatehouse.providers",
    "gatehouse.app",
    "gatehouse.cli",
    "redis",
    "sqlalchemy",
    "aiohttp",
)

# `gatehouse key-helper` runs every few minutes and Claude Code waits for it: it
# must not pull in the server, the database or the full CLI.
LIGHT_CLI = (
    "gatehouse.app",
    "gatehouse.cli.main",
    "gatehouse.cli.common",
    "gatehouse.store",
    "gatehouse.proxy",
    "typer",
    "rich",
    "sqlalchemy",
    "uvicorn",
    "httpx",
)

AUDIT_EDGE = ("gatehouse.proxy", "gatehouse.providers", "gatehouse.app", "gatehouse.cli")
PURE_AUDIT = (*AUDIT_EDGE, "gatehouse.store", "sqlalchemy", "aiohttp", "redis")

# module prefix → what it may not import
FORBIDDEN = {
    "gatehouse.errors": ("gatehouse.",),
    "gatehouse.payload": ("gatehouse.",),
    "gatehouse.claude_code": ("gatehouse.errors", "gatehouse.proxy", "gatehouse.store"),
    "gatehouse.settings": ("gatehouse.store", "gatehouse.proxy", "gatehouse.app", "gatehouse.cli"),
    "gatehouse.identity.principal": ("gatehouse.",),
    "gatehouse.ledger.usage": ("gatehouse.",),
    "gatehouse.events": ("gatehouse.",),
    "gatehouse.proxy.attribution": ("gatehouse.proxy", "gatehouse.store", "gatehouse.app"),
    "gatehouse.policy": (
        "gatehouse.store",
        "gatehouse.proxy",
        "gatehouse.providers",
        "gatehouse.identity.keys",
        "gatehouse.app",
        "gatehouse.cli",
        "redis",
        "sqlalchemy",
        "aiohttp",
    ),
    "gatehouse.proxy.sse": ("gatehouse.store", "gatehouse.providers", "gatehouse.app"),
    "gatehouse.store": (
        "gatehouse.proxy",
        "gatehouse.identity.keys",
        "gatehouse.app",
        "gatehouse.cli",
        "gatehouse.sim",
        "gatehouse.providers",
    ),
    "gatehouse.providers": ("gatehouse.proxy", "gatehouse.store", "gatehouse.app", "gatehouse.cli"),
    "gatehouse.sim": (
        "gatehouse.proxy",
        "gatehouse.store",
        "gatehouse.identity",
        "gatehouse.app",
        "gatehouse.cli",
        "gatehouse.providers",
    ),
    "gatehouse.proxy": ("gatehouse.app", "gatehouse.cli"),
    "gatehouse.ledger.prices": PURE_LEDGER,
    "gatehouse.ledger.cost": PURE_LEDGER,
    "gatehouse.ledger.meter": PURE_LEDGER,
    "gatehouse.ledger.budgets": PURE_LEDGER,
    "gatehouse.ledger.guard": PURE_LEDGER,
    "gatehouse.identity.directory": PURE_LEDGER,
    "gatehouse.identity.scim_resources": PURE_LEDGER,
    "gatehouse.identity.tokens": PURE_LEDGER,
    "gatehouse.cli.keyhelper": LIGHT_CLI,
    "gatehouse.cli.credstore": LIGHT_CLI,
    "gatehouse.web": ("gatehouse.proxy", "gatehouse.providers", "gatehouse.app", "gatehouse.cli"),
    "gatehouse.ledger.rollups": PURE_LEDGER,
    "gatehouse.ledger.exports": PURE_LEDGER,
    # Audit: capture and record hashing are pure (the proxy calls capture on every
    # request); `append` runs inside the store's own transactions, so never imports
    # the Database; nothing in audit reaches into the data plane or the app.
    "gatehouse.audit.capture": PURE_AUDIT,
    "gatehouse.audit.records": PURE_AUDIT,
    "gatehouse.audit.crypto": PURE_AUDIT,
    "gatehouse.audit.append": ("gatehouse.store.db", *AUDIT_EDGE),
    "gatehouse.audit": AUDIT_EDGE,
    # Blocks and their addresses are shared by the guardrails and the audit trail.
    "gatehouse.content": ("gatehouse.",),
    # Screening runs on the hot path: pure, over compiled rules.
    "gatehouse.guardrails": (
        "gatehouse.store",
        "gatehouse.proxy",
        "gatehouse.providers",
        "gatehouse.audit",
        "gatehouse.app",
        "gatehouse.cli",
        "redis",
        "sqlalchemy",
        "aiohttp",
    ),
    # The admin API reads through services; it never reaches into the data plane.
    "gatehouse.admin": ("gatehouse.proxy", "gatehouse.providers", "gatehouse.app", "gatehouse.cli"),
}


# A pure package's I/O edge: the service modules the CLI and admin API call (like
# ledger/budgeting.py) and the watcher keeping the snapshot current.  They may use
# the store; the decision modules beside them may not.
IO_EDGES = {
    "gatehouse.policy": (
        "gatehouse.policy.service",
        "gatehouse.policy.requests",
        "gatehouse.policy.enforcement",
    ),
}


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(p for p in parts if p != "__init__")
        out.append((name, path))
    return out


@pytest.mark.parametrize(("module", "path"), _modules(), ids=lambda v: str(v))
def test_imports_point_downward(module: str, path: Path) -> None:
    rules = [
        bad
        for prefix, bad in FORBIDDEN.items()
        if module.startswith(prefix) and module not in IO_EDGES.get(prefix, ())
    ]
    imported: list[str] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
    for bad in (b for rule in rules for b in rule):
        offenders = [name for name in imported if name.startswith(bad) and name != module]
        assert not offenders, f"{module} must not import {offenders}"


def test_modules_stay_readable_in_one_sitting() -> None:
    long = {name: n for name, p in _modules() if (n := len(p.read_text().splitlines())) > 500}
    assert not long, f"split these modules: {long}"
