"""Checked values: a parsed document that remembers where each value came from.

A policy file is composed to YAML nodes (not loaded to plain values), so every
key and value keeps its line; `Checked` wraps either a node (``policy.yaml:12``)
or a plain value from JSON (``policy: repositories.github.com/acme/x``), and
every check raises `PolicyError` naming that place.  Duplicate keys, which
plain YAML loading silently collapses, are an error here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

import yaml

from gatehouse.errors import InvalidRequest


class PolicyError(InvalidRequest):
    """A policy that cannot be accepted; the message names the file and line when known."""


class Checked:
    """One value of a document and where it is (``file:line`` or a dotted path)."""

    __slots__ = ("value", "where")

    def __init__(self, value: Any, where: str) -> None:
        self.value = value
        self.where = where

    def error(self, message: str) -> PolicyError:
        return PolicyError(f"{self.where}: {message}")

    def mapping(
        self, keys: tuple[str, ...] | None = None, what: str = "this"
    ) -> dict[str, Checked]:
        """The entries of a mapping; with ``keys``, any other key is an error at its line."""
        if self.value is None:
            return {}
        if not isinstance(self.value, dict):
            raise self.error(f"{what} must be a mapping of keys to values")
        out: dict[str, Checked] = self.value
        if keys is not None:
            for key, item in out.items():
                if key not in keys:
                    raise PolicyError(
                        f"{_key_where(item, key)}: unknown key {key!r} in {what}; "
                        f"expected one of: {', '.join(keys)}"
                    )
        return out

    def items(self, what: str = "this") -> list[Checked]:
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            raise self.error(f"{what} must be a list")
        return list(self.value)

    def text(self, what: str, *, choices: tuple[str, ...] = (), required: bool = False) -> str:
        value = self.value
        if value is None:
            value = ""
        if isinstance(value, (date, datetime)):
            value = value.isoformat()  # an unquoted date where text was meant
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.error(f"{what} must be text")
        value = str(value).strip()
        if required and not value:
            raise self.error(f"{what} cannot be empty")
        if choices and value not in choices:
            raise self.error(f"{what} must be one of {', '.join(choices)}, not {value!r}")
        return value

    def flag(self, what: str) -> bool:
        if self.value is None:
            return False
        if not isinstance(self.value, bool):
            raise self.error(f"{what} must be true or false, not {self.value!r}")
        return self.value

    def time(self, what: str) -> float:
        """Epoch seconds from a number, an ISO 8601 time or date, or empty (0)."""
        value = self.value
        if value is None or value == "":
            return 0.0
        if isinstance(value, bool):
            raise self.error(f"{what} must be a time")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise self.error(
                    f"{what} must be an ISO 8601 time such as 2026-11-27T10:00:00Z, not {value!r}"
                ) from None
            return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
        raise self.error(f"{what} must be a time")


def _key_where(item: Checked, key: str) -> str:
    return getattr(item, "key_where", item.where)


def from_plain(value: Any, where: str) -> Checked:
    """Wrap JSON-like data; places are dotted paths under ``where``."""
    if isinstance(value, Mapping):
        return Checked({str(k): from_plain(v, f"{where}.{k}") for k, v in value.items()}, where)
    if isinstance(value, (list, tuple)):
        return Checked([from_plain(v, f"{where}[{i}]") for i, v in enumerate(value)], where)
    return Checked(value, where)


def from_yaml(text: str, source: str) -> Checked:
    """Compose ``text`` to nodes and wrap them; YAML syntax errors name their line too."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        context = exc.context_mark
        started = (
            f" ({exc.context} on line {context.line + 1})"
            if exc.context and context is not None and context is not mark
            else ""
        )
        raise PolicyError(
            f"{source}{line}: not valid YAML: {exc.problem or exc}{started}"
        ) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML: {exc}") from None
    if root is None:
        return Checked(None, f"{source}:1")
    return _wrap(root, source, yaml.constructor.SafeConstructor())


def _wrap(node: yaml.Node, source: str, constructor: yaml.constructor.SafeConstructor) -> Checked:
    where = f"{source}:{node.start_mark.line + 1}"
    if isinstance(node, yaml.MappingNode):
        entries: dict[str, Checked] = {}
        for key_node, value_node in node.value:
            key_where = f"{source}:{key_node.start_mark.line + 1}"
            if not isinstance(key_node, yaml.ScalarNode):
                raise PolicyError(f"{key_where}: keys must be plain text")
            key = str(key_node.value)
            if key in entries:
                raise PolicyError(f"{key_where}: duplicate key {key!r}")
            item = _wrap(value_node, source, constructor)
            entries[key] = _Keyed(item.value, item.where, key_where)
        return Checked(entries, where)
    if isinstance(node, yaml.SequenceNode):
        return Checked([_wrap(item, source, constructor) for item in node.value], where)
    try:
        value = constructor.construct_object(node, deep=True)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{where}: cannot read this value: {exc}") from None
    return Checked(value, where)


class _Keyed(Checked):
    """A mapping value that also knows its key's line (unknown keys are reported there)."""

    __slots__ = ("key_where",)

    def __init__(self, value: Any, where: str, key_where: str) -> None:
        super().__init__(value, where)
        self.key_where = key_where
