"""SCIM discovery documents (RFC 7643 §5–7, RFC 7644 §4): what this service provider
supports, minimal but valid, so IdP connectors (Okta, Entra ID) can read them."""

from __future__ import annotations

from typing import Any

from gatehouse.identity.scim_resources import GROUP_SCHEMA, LIST_SCHEMA, MAX_RESULTS, USER_SCHEMA

_CONFIG_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
_TYPE_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
_SCHEMA_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Schema"
ENTERPRISE_SCHEMA = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def service_provider_config(base: str) -> dict[str, Any]:
    """PATCH and filtering (``eq`` only) supported; bulk, sort, ETags and password change not."""
    return {
        "schemas": [_CONFIG_SCHEMA],
        "documentationUri": "https://github.com/gatehouse/gatehouse/blob/main/docs/identity.md",
        "patch": {"supported": True},
        "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": True, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": False},
        "sort": {"supported": False},
        "etag": {"supported": False},
        "authenticationSchemes": [
            {
                "type": "oauthbearertoken",
                "name": "Bearer token",
                "description": "The value of GATEHOUSE_SCIM_TOKEN as 'Authorization: Bearer'.",
                "primary": True,
            }
        ],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": f"{base}/ServiceProviderConfig",
        },
    }


def resource_types() -> dict[str, Any]:
    types: list[dict[str, Any]] = [
        {
            "schemas": [_TYPE_SCHEMA],
            "id": "User",
            "name": "User",
            "endpoint": "/Users",
            "schema": USER_SCHEMA,
            "schemaExtensions": [{"schema": ENTERPRISE_SCHEMA, "required": False}],
            "meta": {"resourceType": "ResourceType"},
        },
        {
            "schemas": [_TYPE_SCHEMA],
            "id": "Group",
            "name": "Group",
            "endpoint": "/Groups",
            "schema": GROUP_SCHEMA,
            "meta": {"resourceType": "ResourceType"},
        },
    ]
    return _listed(types)


def schemas() -> dict[str, Any]:
    user: dict[str, Any] = {
        "schemas": [_SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "A human; userName is their email. Other attributes are kept as sent.",
        "attributes": [
            _attribute("userName", required=True, uniqueness="server"),
            _attribute("displayName"),
            _attribute("externalId", case_exact=True),
            _attribute("active", kind="boolean"),
        ],
        "meta": {"resourceType": "Schema"},
    }
    group: dict[str, Any] = {
        "schemas": [_SCHEMA_SCHEMA],
        "id": GROUP_SCHEMA,
        "name": "Group",
        "description": "An IdP group: team-<name> groups make teams, role_groups grant roles.",
        "attributes": [
            _attribute("displayName", required=True, uniqueness="server"),
            _attribute("externalId", case_exact=True),
            {
                "name": "members",
                "type": "complex",
                "multiValued": True,
                "required": False,
                "mutability": "readWrite",
                "returned": "default",
                "subAttributes": [_attribute("value", case_exact=True)],
            },
        ],
        "meta": {"resourceType": "Schema"},
    }
    return _listed([user, group])


def _attribute(
    name: str,
    *,
    kind: str = "string",
    required: bool = False,
    uniqueness: str = "none",
    case_exact: bool = False,
) -> dict[str, Any]:
    return {
        "name": name,
        "type": kind,
        "multiValued": False,
        "required": required,
        "caseExact": case_exact,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": uniqueness,
    }


def _listed(resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": [LIST_SCHEMA],
        "totalResults": len(resources),
        "startIndex": 1,
        "itemsPerPage": len(resources),
        "Resources": resources,
    }
