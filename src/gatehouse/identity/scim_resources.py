"""SCIM 2.0 (RFC 7643/7644) resources as plain JSON documents: pure, no I/O.

Filters, paging, PATCH operations and the checks on a submitted User, as IdPs
really send them: Okta's ``{"op":"replace","value":{"active":false}}``, Entra
ID's ``{"op":"Replace","path":"active","value":"False"}`` (string booleans,
capitalised op names), ``emails[type eq "work"].value``, enterprise-extension
paths and group ``members[value eq "…"]``.  Attribute names are matched
case-insensitively, as RFC 7643 §2.1 asks.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
MAX_RESULTS = 200
"""The most resources one list response holds (advertised in ServiceProviderConfig)."""

# Attributes Gatehouse owns or must never keep: the IdP's copy is dropped on write.
_NOT_STORED = {"id", "meta", "password"}
_FILTER = re.compile(r'^\s*([A-Za-z][\w.:$-]*)\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$', re.IGNORECASE)
_PATH = re.compile(r"^([A-Za-z][\w$-]*)(?:\[(.+)\])?(?:\.([A-Za-z][\w$-]*))?$")


class ScimError(Exception):
    """A refusal rendered as a SCIM Error response (RFC 7644 §3.12)."""

    def __init__(self, status: int, detail: str, scim_type: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.scim_type = scim_type

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "schemas": [ERROR_SCHEMA],
            "status": str(self.status),
            "detail": self.detail,
        }
        if self.scim_type:
            out["scimType"] = self.scim_type
        return out


def invalid(detail: str, scim_type: str = "invalidValue") -> ScimError:
    return ScimError(400, detail, scim_type)


# -- filters and paging ---------------------------------------------------------


def parse_filter(text: str, allowed: tuple[str, ...]) -> tuple[str, str]:
    """``userName eq "ada@example.com"`` → ``("userName", "ada@example.com")``.

    Only ``eq`` on one of ``allowed`` (the canonical spelling is returned); any other
    filter is a 400 ``invalidFilter``, never silently "everything".
    """
    match = _FILTER.match(text)
    attribute = _canonical(match.group(1), allowed) if match else None
    if match is None or attribute is None:
        supported = " or ".join(f'{name} eq "…"' for name in allowed) or 'attribute eq "…"'
        raise invalid(
            f"unsupported filter {text!r}: Gatehouse supports {supported}", "invalidFilter"
        )
    return attribute, re.sub(r"\\(.)", r"\1", match.group(2))


def parse_paging(params: Mapping[str, str]) -> tuple[int, int]:
    """``(startIndex, count)`` from query parameters: 1-based, count capped at MAX_RESULTS."""
    try:
        start = int(params.get("startIndex", "1"))
        count = int(params.get("count", str(MAX_RESULTS)))
    except ValueError:
        raise invalid("startIndex and count must be integers") from None
    return max(start, 1), min(max(count, 0), MAX_RESULTS)


def list_response(resources: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": total,
        "startIndex": start,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }


# -- users ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserFields:
    """What Gatehouse reads from a submitted User; the rest is kept as sent."""

    user_name: str
    display_name: str
    external_id: str | None
    active: bool
    resource: dict[str, Any]


def user_fields(document: object) -> UserFields:
    """Check a submitted (or patched) User document; 400 ``invalidValue`` when unusable."""
    if not isinstance(document, dict):
        raise invalid("the request body must be a SCIM User object", "invalidSyntax")
    resource = {k: v for k, v in document.items() if k.casefold() not in _NOT_STORED}
    user_name = get(resource, "userName")
    if not isinstance(user_name, str) or not user_name.strip():
        raise invalid("userName is required: the human's email address")
    if "@" not in user_name:
        raise invalid(
            f"userName {user_name!r} is not an email address; Gatehouse keys people by email"
        )
    active = to_bool(get(resource, "active", True), "active")
    _put(resource, "active", active)
    external_id = get(resource, "externalId")
    if external_id is not None and not isinstance(external_id, str):
        raise invalid("externalId must be a string")
    return UserFields(
        user_name=user_name.strip().lower(),
        display_name=_display_name(resource, user_name.strip()),
        external_id=external_id,
        active=active,
        resource=resource,
    )


def to_bool(value: object, name: str) -> bool:
    """JSON booleans, and the strings Entra ID sends (``"True"``, ``"False"``)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise invalid(f"{name} must be true or false, not {value!r}")


def _display_name(resource: dict[str, Any], fallback: str) -> str:
    shown = get(resource, "displayName")
    if isinstance(shown, str) and shown.strip():
        return shown.strip()
    name = get(resource, "name")
    if isinstance(name, dict):
        formatted = get(name, "formatted")
        if isinstance(formatted, str) and formatted.strip():
            return formatted.strip()
        parts = [get(name, "givenName"), get(name, "familyName")]
        joined = " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())
        if joined:
            return joined
    return fallback


# -- groups ---------------------------------------------------------------------


def group_fields(document: object) -> tuple[str, str | None, list[str]]:
    """``(displayName, externalId, member ids)`` of a submitted Group."""
    if not isinstance(document, dict):
        raise invalid("the request body must be a SCIM Group object", "invalidSyntax")
    name = get(document, "displayName")
    if not isinstance(name, str) or not name.strip():
        raise invalid("displayName is required: the IdP group's name")
    external_id = get(document, "externalId")
    if external_id is not None and not isinstance(external_id, str):
        raise invalid("externalId must be a string")
    members = get(document, "members", []) or []
    if not isinstance(members, list):
        raise invalid("members must be a list of {value: user id}")
    ids = []
    for member in members:
        value = get(member, "value") if isinstance(member, dict) else None
        if not isinstance(value, str) or not value:
            raise invalid(f"group member {member!r} has no value (the user's id)")
        ids.append(value)
    return name.strip(), external_id, list(dict.fromkeys(ids))


# -- PATCH ----------------------------------------------------------------------


def apply_patch(document: dict[str, Any], body: object) -> dict[str, Any]:
    """A copy of ``document`` with the PatchOp ``body``'s Operations applied in order."""
    operations = get(body, "Operations") if isinstance(body, dict) else None
    if not isinstance(operations, list) or not operations:
        raise invalid("a PATCH body needs a non-empty Operations list", "invalidSyntax")
    out = copy.deepcopy(document)
    for operation in operations:
        if not isinstance(operation, dict):
            raise invalid(f"operation {operation!r} is not an object", "invalidSyntax")
        op = get(operation, "op")
        if not isinstance(op, str) or op.lower() not in ("add", "replace", "remove"):
            raise invalid(f"op must be add, replace or remove, not {op!r}", "invalidSyntax")
        path = get(operation, "path")
        if path is not None and not isinstance(path, str):
            raise invalid("path must be a string", "invalidPath")
        _apply(out, op.lower(), path.strip() if path else "", get(operation, "value"))
    return out


def _apply(doc: dict[str, Any], op: str, path: str, value: Any) -> None:
    if not path:
        if op == "remove":
            raise invalid("remove needs a path", "noTarget")
        if not isinstance(value, dict):
            raise invalid("an operation without a path needs an object value")
        for name, item in value.items():
            if name.lower().startswith("urn:") and isinstance(item, dict):
                extension = _extension(doc, name)
                for sub, sub_value in item.items():
                    _set(extension, sub, sub_value, op)
            else:
                _set(doc, name, item, op)
        return
    schema, attribute_path = _split_schema(path)
    match = _PATH.match(attribute_path)
    if match is None:
        raise invalid(f"cannot read path {path!r}", "invalidPath")
    attribute, condition, sub = match.groups()
    target: dict[str, Any] | None = doc
    if schema:
        target = _extension(doc, schema) if op != "remove" else get(doc, schema)
    if not isinstance(target, dict):
        return
    if condition is None and sub is None:
        _set(target, attribute, value, op)
    elif condition is None:
        parent = get(target, attribute)
        if not isinstance(parent, dict):
            if op == "remove":
                return
            parent = {}
            _put(target, attribute, parent)
        _set(parent, sub, value, op)
    else:
        _apply_filtered(target, attribute, condition, sub, value, op)


def _apply_filtered(
    target: dict[str, Any], attribute: str, condition: str, sub: str | None, value: Any, op: str
) -> None:
    key, wanted = parse_filter(condition, ())
    items = get(target, attribute)
    items = items if isinstance(items, list) else []
    hits = [i for i in items if isinstance(i, dict) and _equal(get(i, key), wanted)]
    if op == "remove":
        if sub is None:
            _put(target, attribute, [i for i in items if i not in hits])
        else:
            for hit in hits:
                hit.pop(_key(hit, sub), None)
        return
    if not hits:
        new: dict[str, Any] = {key: wanted}
        if sub is not None:
            new[sub] = value
        elif isinstance(value, dict):
            new.update(value)
        _put(target, attribute, [*items, new])
        return
    for hit in hits:
        if sub is not None:
            _put(hit, sub, value)
        elif isinstance(value, dict):
            hit.update(value)


def _set(target: dict[str, Any], name: str, value: Any, op: str) -> None:
    current = get(target, name)
    if op == "remove":
        if isinstance(current, list) and isinstance(value, list):
            # Entra removes members by listing them: {"path":"members","value":[{"value":…}]}
            drop = {_identity(v) for v in value}
            _put(target, name, [i for i in current if _identity(i) not in drop])
        else:
            target.pop(_key(target, name), None)
    elif op == "add" and isinstance(current, list):
        have = {_identity(i) for i in current}
        extra = [
            v for v in (value if isinstance(value, list) else [value]) if _identity(v) not in have
        ]
        _put(target, name, current + extra)
    elif isinstance(current, dict) and isinstance(value, dict):
        current.update(value)
    else:
        _put(target, name, value)


def _split_schema(path: str) -> tuple[str, str]:
    """``urn:…:enterprise:2.0:User:department`` → (the URN, ``department``); core URNs vanish."""
    if not path.lower().startswith("urn:"):
        return "", path
    head = path.split("[", 1)[0]
    cut = head.rfind(":")
    schema, attribute = path[:cut], path[cut + 1 :]
    if schema.lower() in (USER_SCHEMA.lower(), GROUP_SCHEMA.lower()):
        return "", attribute
    return schema, attribute


def _extension(doc: dict[str, Any], schema: str) -> dict[str, Any]:
    """The object holding an extension schema's attributes, created when missing."""
    found = get(doc, schema)
    if isinstance(found, dict):
        return found
    fresh: dict[str, Any] = {}
    _put(doc, schema, fresh)
    return fresh


def _identity(item: Any) -> Any:
    """Members and multi-valued items compare by their ``value``; anything else by itself."""
    if isinstance(item, dict) and get(item, "value") is not None:
        return ("value", str(get(item, "value")))
    return repr(item)


def _equal(have: Any, wanted: str) -> bool:
    if isinstance(have, bool):
        return str(have).lower() == wanted.lower()
    return isinstance(have, str | int | float) and str(have).casefold() == wanted.casefold()


def _canonical(name: str, allowed: tuple[str, ...]) -> str | None:
    if not allowed:
        return name
    return next((a for a in allowed if a.casefold() == name.casefold()), None)


def _key(mapping: Mapping[str, Any], name: str) -> str:
    folded = name.casefold()
    return next((k for k in mapping if k.casefold() == folded), name)


def get(mapping: object, name: str, default: Any = None) -> Any:
    """``mapping[name]`` with the attribute name compared case-insensitively."""
    if not isinstance(mapping, dict):
        return default
    return mapping.get(_key(mapping, name), default)


def _put(mapping: dict[str, Any], name: str, value: Any) -> None:
    mapping[_key(mapping, name)] = value
