"""Docs kept honest by tests: every setting and every command is documented, as it is."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main

from gatehouse.cli.main import app
from gatehouse.settings import Settings

ROOT = Path(__file__).parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
CLI = ROOT / "docs" / "cli.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PACKAGE = ROOT / "src" / "gatehouse"
# Docs that name GATEHOUSE_* variables and must name only real ones.
OWN_DOCS = (
    "README.md",
    "docs/architecture.md",
    "docs/cli.md",
    "docs/configuration.md",
    "docs/operations.md",
)
NOT_SETTINGS = {
    "GATEHOUSE_CONFIG",  # names the YAML file itself
    "GATEHOUSE_LOG_LEVEL",  # read by cli/processes.py for uvicorn
    "GATEHOUSE_TEST_POSTGRES_URL",  # the test suite's services
    "GATEHOUSE_TEST_REDIS_URL",
    "GATEHOUSE_REQUIRE_SERVICES",
}
SETTINGS = list(dataclasses.fields(Settings))


def env_var(field: dataclasses.Field[Any]) -> str:
    return "GATEHOUSE_" + field.name.upper()


def commands() -> Iterator[tuple[str, Any]]:
    """Every leaf command of the Typer app as ("keys create", click command)."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        subcommands = getattr(command, "commands", None)
        if not subcommands:
            yield " ".join(path), command
            return
        for name, sub in subcommands.items():
            yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


def cli_sections() -> dict[str, str]:
    """``## gatehouse keys create`` sections of docs/cli.md, by command."""
    sections: dict[str, str] = {}
    current = None
    for line in CLI.read_text().splitlines():
        heading = re.match(r"^## `?gatehouse ([a-z -]+?)`?\s*$", line)
        if heading:
            current = heading.group(1)
            sections[current] = ""
        elif line.startswith("## "):
            current = None
        elif current is not None:
            sections[current] += line + "\n"
    return sections


@pytest.mark.parametrize("field", SETTINGS, ids=lambda f: f.name)
def test_every_setting_is_documented_with_its_default(field: dataclasses.Field[Any]) -> None:
    rows = [
        line
        for line in CONFIGURATION.read_text().splitlines()
        if line.startswith(f"| `{env_var(field)}` |")
    ]
    assert rows, f"{env_var(field)} has no row in the settings table of docs/configuration.md"
    default = str(field.default)
    if default:
        assert f"`{default}`" in rows[0], (
            f"{env_var(field)}: docs/configuration.md does not give its default {default!r}"
        )


@pytest.mark.parametrize("doc", OWN_DOCS)
def test_docs_name_only_real_environment_variables(doc: str) -> None:
    known = {env_var(f) for f in SETTINGS} | NOT_SETTINGS
    named = set(re.findall(r"GATEHOUSE_[A-Z][A-Z0-9_]*", (ROOT / doc).read_text()))
    assert not named - known, f"{doc} names variables Gatehouse does not read: {named - known}"


@pytest.mark.parametrize(("name", "command"), list(commands()), ids=lambda v: str(v))
def test_every_command_and_option_is_documented(name: str, command: Any) -> None:
    sections = cli_sections()
    assert name in sections, (
        f"`gatehouse {name}` has no `## gatehouse {name}` section in docs/cli.md"
    )
    text = sections[name]
    for param in command.params:
        if param.param_type_name == "argument":
            names = [param.name.upper()]
        else:
            names = [*param.opts, *param.secondary_opts]
        for option in names:
            assert option in text, f"docs/cli.md: `gatehouse {name}` does not document {option}"


def test_cli_docs_describe_no_command_that_does_not_exist() -> None:
    stale = set(cli_sections()) - {name for name, _ in commands()}
    assert not stale, f"docs/cli.md documents commands that do not exist: {stale}"


def test_the_module_map_names_every_module() -> None:
    modules = {
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py" and "migrations" not in path.parts
    }
    text = ARCHITECTURE.read_text()
    missing = sorted(m for m in modules if f"  {m} " not in text)
    assert not missing, f"docs/architecture.md's module map lacks {missing}"
