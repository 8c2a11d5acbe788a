"""identity/scim_resources.py: SCIM filters, paging and PATCH as IdPs send them (pure)."""

from typing import Any

import pytest

from gatehouse.identity.scim_resources import (
    MAX_RESULTS,
    ScimError,
    apply_patch,
    group_fields,
    parse_filter,
    parse_paging,
    user_fields,
)

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"


def patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
        "Operations": list(operations),
    }


def scim_type(exc: pytest.ExceptionInfo[ScimError]) -> str:
    return exc.value.scim_type


def test_filters_accept_eq_on_the_allowed_attributes() -> None:
    allowed = ("userName", "externalId")
    assert parse_filter('userName eq "ada@example.com"', allowed) == ("userName", "ada@example.com")
    assert parse_filter('USERNAME EQ "a\\"b"', allowed) == ("userName", 'a"b')
    assert parse_filter(' externalId eq "00u1" ', allowed) == ("externalId", "00u1")


@pytest.mark.parametrize(
    "text",
    [
        'userName co "ada"',
        'emails.value eq "ada@example.com"',
        'userName eq "a" and active eq true',
        "userName eq ada",
        "",
    ],
)
def test_other_filters_are_invalid_not_everything(text: str) -> None:
    with pytest.raises(ScimError) as exc:
        parse_filter(text, ("userName", "externalId"))
    assert exc.value.status == 400
    assert scim_type(exc) == "invalidFilter"


def test_paging_is_one_based_and_capped() -> None:
    assert parse_paging({}) == (1, MAX_RESULTS)
    assert parse_paging({"startIndex": "0", "count": "-3"}) == (1, 0)
    assert parse_paging({"startIndex": "11", "count": "5000"}) == (11, MAX_RESULTS)
    with pytest.raises(ScimError):
        parse_paging({"count": "ten"})


def test_user_fields_keep_unknown_attributes_and_drop_the_password() -> None:
    fields = user_fields(
        {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            "userName": " Ada@Example.COM ",
            "name": {"givenName": "Ada", "familyName": "Lovelace"},
            "password": "hunter2",
            "id": "client-chosen",
            "active": "True",
            ENTERPRISE: {"department": "R&D"},
            "x-custom": [1, 2],
        }
    )
    assert fields.user_name == "ada@example.com"
    assert fields.display_name == "Ada Lovelace"
    assert fields.active is True
    assert "password" not in fields.resource and "id" not in fields.resource
    assert fields.resource["x-custom"] == [1, 2]
    assert fields.resource[ENTERPRISE] == {"department": "R&D"}


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"userName": ""},
        {"userName": "not-an-email"},
        {"userName": "a@example.com", "active": "maybe"},
        {"userName": "a@example.com", "externalId": 7},
        [],
    ],
)
def test_unusable_users_are_refused(body: object) -> None:
    with pytest.raises(ScimError) as exc:
        user_fields(body)
    assert exc.value.status == 400
    assert scim_type(exc) in ("invalidValue", "invalidSyntax")


def test_okta_deactivates_with_a_value_object() -> None:
    user = {"userName": "ada@example.com", "active": True}
    patched = apply_patch(user, patch({"op": "replace", "value": {"active": False}}))
    assert patched["active"] is False
    assert user["active"] is True  # the input is not changed


def test_entra_sends_capitalised_ops_and_string_booleans() -> None:
    user: dict[str, Any] = {"userName": "ada@example.com", "active": True}
    patched = apply_patch(
        user,
        patch(
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": 'emails[type eq "work"].value', "value": "ada@corp.example"},
            {"op": "Replace", "path": "name.givenName", "value": "Ada"},
            {"op": "Add", "path": f"{ENTERPRISE}:department", "value": "R&D"},
            {
                "op": "Replace",
                "path": "urn:ietf:params:scim:schemas:core:2.0:User:displayName",
                "value": "Ada L",
            },
        ),
    )
    assert user_fields(patched).active is False
    assert patched["emails"] == [{"type": "work", "value": "ada@corp.example"}]
    assert patched["name"] == {"givenName": "Ada"}
    assert patched[ENTERPRISE] == {"department": "R&D"}
    assert patched["displayName"] == "Ada L"
    again = apply_patch(
        patched,
        patch({"op": "replace", "path": 'emails[type eq "WORK"].value', "value": "new@corp"}),
    )
    assert again["emails"] == [{"type": "work", "value": "new@corp"}]


def test_group_members_add_and_remove_by_filter_and_by_list() -> None:
    group: dict[str, Any] = {"displayName": "team-core", "members": [{"value": "u1"}]}
    added = apply_patch(
        group,
        patch({"op": "add", "path": "members", "value": [{"value": "u2"}, {"value": "u1"}]}),
    )
    assert group_fields(added)[2] == ["u1", "u2"]
    okta = apply_patch(added, patch({"op": "remove", "path": 'members[value eq "u1"]'}))
    assert group_fields(okta)[2] == ["u2"]
    entra = apply_patch(
        added, patch({"op": "Remove", "path": "members", "value": [{"value": "u2"}]})
    )
    assert group_fields(entra)[2] == ["u1"]
    renamed = apply_patch(
        added, patch({"op": "replace", "value": {"id": "g1", "displayName": "team-search"}})
    )
    assert group_fields(renamed)[0] == "team-search"
    cleared = apply_patch(added, patch({"op": "remove", "path": "members"}))
    assert group_fields(cleared)[2] == []


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"Operations": []}, "invalidSyntax"),
        ({"schemas": []}, "invalidSyntax"),
        (patch({"op": "move", "path": "active"}), "invalidSyntax"),
        (patch({"op": "remove"}), "noTarget"),
        (patch({"op": "replace", "value": "x"}), "invalidValue"),
        (patch({"op": "replace", "path": "a b c", "value": 1}), "invalidPath"),
        (patch({"op": "replace", "path": 'emails[type co "w"]', "value": 1}), "invalidFilter"),
    ],
)
def test_malformed_patches_say_what_is_wrong(body: dict[str, Any], kind: str) -> None:
    with pytest.raises(ScimError) as exc:
        apply_patch({"userName": "a@example.com"}, body)
    assert exc.value.status == 400
    assert scim_type(exc) == kind
