"""The IdP normaliser (scim/dialects.py): each rule rewrites its deviation and nothing else."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scim_bridge.scim.dialects import (
    MICROSOFT_GROUP_SCHEMA,
    MODELS,
    drop_microsoft_group_schema,
    drop_nulls_in_remove_value,
    normalize_request,
    qualify_extension_paths,
    split_filtered_value_keys,
    unwrap_single_valued_list,
    wrap_bare_reference,
)

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_MODEL = MODELS["users"]
GROUP_MODEL = MODELS["groups"]

Json = dict[str, Any]


def patch_body(*operations: Json) -> bytes:
    return json.dumps({"schemas": [PATCH_OP], "Operations": list(operations)}).encode()


def operations_of(body: bytes) -> list[Json]:
    operations: list[Json] = json.loads(body)["Operations"]
    return operations


# -- conformant requests pass through untouched -------------------------------------------------

CONFORMANT = [
    ("PATCH", "/Users/u1", patch_body({"op": "replace", "path": "active", "value": False})),
    (
        "PATCH",
        "/Users/u1",
        patch_body({"op": "replace", "value": {"active": False, "displayName": "A"}}),
    ),
    (
        "PATCH",
        "/Users/u1",
        patch_body({"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": "m1"}}),
    ),
    (
        "PATCH",
        "/Users/u1",
        patch_body({"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@b.com"}),
    ),
    (
        "PATCH",
        "/Users/u1",
        patch_body({"op": "add", "path": "emails", "value": [{"value": "a@b.com"}]}),
    ),
    ("PATCH", "/Groups/g1", patch_body({"op": "remove", "path": 'members[value eq "u1"]'})),
    (
        "PATCH",
        "/Groups/g1",
        patch_body({"op": "add", "path": "members", "value": [{"value": "u1"}]}),
    ),
    ("PATCH", "/Groups/g1", patch_body({"op": "replace", "path": "members", "value": []})),
    ("POST", "/Users", json.dumps({"schemas": [USER], "userName": "alice"}).encode()),
    (
        "PUT",
        "/Users/u1",
        json.dumps(
            {"schemas": [USER, ENTERPRISE], "userName": "a", ENTERPRISE: {"department": "x"}}
        ).encode(),
    ),
    (
        "POST",
        "/Groups",
        json.dumps({"schemas": [GROUP], "displayName": "g", "members": []}).encode(),
    ),
]


@pytest.mark.parametrize(("method", "path", "body"), CONFORMANT)
def test_conformant_request_passes_through_unchanged(method: str, path: str, body: bytes) -> None:
    assert normalize_request(method, path, body) == body


# A conformant body in a layout json.dumps would not reproduce: spaces, escapes, key order.
HAND_WRITTEN = (
    b'{ "Operations" : [ {"value":[{"value":"u\\u00e9"}],"path":"members","op":"add"} ],\n'
    b'  "schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"] }'
)


def test_conformant_request_is_not_reserialised() -> None:
    assert normalize_request("PATCH", "/Groups/g1", HAND_WRITTEN) is HAND_WRITTEN


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/Groups/g1", b"{not json"),
        ("PATCH", "/Groups/g1", b"[1, 2]"),
        ("PATCH", "/Groups/g1", b""),
        ("GET", "/Users", b""),
        ("DELETE", "/Groups/g1", b""),
        (
            "POST",
            "/Bulk",
            json.dumps({"Operations": [{"op": "Remove", "value": [{"$ref": None}]}]}).encode(),
        ),
        ("POST", "/.search", json.dumps({"filter": 'userName eq "a"'}).encode()),
    ],
    ids=["invalid-json", "not-an-object", "empty", "get", "delete", "bulk", "root-search"],
)
def test_request_outside_the_rules_passes_through(method: str, path: str, body: bytes) -> None:
    assert normalize_request(method, path, body) is body


# -- Entra: a Remove listing members with a null $ref --------------------------------------------


def test_remove_value_loses_its_null_keys() -> None:
    operation = {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "u1"}]}

    assert drop_nulls_in_remove_value(GROUP_MODEL, operation) == [
        {"op": "Remove", "path": "members", "value": [{"value": "u1"}]}
    ]


def test_remove_value_without_null_keys_is_kept() -> None:
    operation = {"op": "Remove", "path": "members", "value": [{"value": "u1"}, {"value": "u2"}]}

    assert drop_nulls_in_remove_value(GROUP_MODEL, operation) == [operation]


def test_null_keys_of_an_add_are_left_to_validation() -> None:
    operation = {"op": "Add", "path": "members", "value": [{"$ref": None, "value": "u1"}]}

    assert drop_nulls_in_remove_value(GROUP_MODEL, operation) == [operation]


# -- Entra: extension attribute paths without their URN -----------------------------------------


def test_bare_enterprise_attribute_path_gets_the_enterprise_urn() -> None:
    operation = {"op": "Add", "path": "manager", "value": [{"value": "m1"}]}

    assert qualify_extension_paths(USER_MODEL, operation) == [
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": [{"value": "m1"}]}
    ]


@pytest.mark.parametrize(
    "path", ["displayName", "name.givenName", "noSuchAttribute", f"{ENTERPRISE}:manager"]
)
def test_path_the_core_schema_declares_or_no_schema_declares_is_kept(path: str) -> None:
    operation = {"op": "replace", "path": path, "value": "x"}

    assert qualify_extension_paths(USER_MODEL, operation) == [operation]


# -- Entra with aadOptscim062020: a filtered path as a key of a path-less value -------------------


def test_filtered_key_of_a_pathless_value_becomes_its_own_operation() -> None:
    operation = {
        "op": "replace",
        "value": {"displayName": "Pvlo", 'emails[type eq "work"].value': "a@b.com"},
    }

    assert split_filtered_value_keys(USER_MODEL, operation) == [
        {"op": "replace", "value": {"displayName": "Pvlo"}},
        {"op": "replace", "path": 'emails[type eq "work"].value', "value": "a@b.com"},
    ]


def test_pathless_value_of_filtered_keys_only_leaves_no_empty_operation() -> None:
    operation = {"op": "Replace", "value": {'emails[type eq "work"].value': "a@b.com"}}

    assert split_filtered_value_keys(USER_MODEL, operation) == [
        {"op": "Replace", "path": 'emails[type eq "work"].value', "value": "a@b.com"}
    ]


def test_pathless_value_of_attribute_paths_is_kept() -> None:
    operation = {
        "op": "replace",
        "value": {"name.givenName": "Kkom", f"{ENTERPRISE}:employeeNumber": "1"},
    }

    assert split_filtered_value_keys(USER_MODEL, operation) == [operation]


# -- Entra without the flag: a single value wrapped in a list -----------------------------------


def test_simple_single_valued_attribute_is_unwrapped_from_its_list() -> None:
    operation = {"op": "Add", "path": "nickName", "value": [{"value": "Babs"}]}

    assert unwrap_single_valued_list(USER_MODEL, operation) == [
        {"op": "Add", "path": "nickName", "value": "Babs"}
    ]


def test_complex_single_valued_attribute_is_unwrapped_without_null_keys() -> None:
    operation = {
        "op": "Add",
        "path": f"{ENTERPRISE}:manager",
        "value": [{"$ref": None, "value": "m1"}],
    }

    assert unwrap_single_valued_list(USER_MODEL, operation) == [
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": {"value": "m1"}}
    ]


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "emails", "value": [{"value": "a@b.com"}]},
        {"op": "add", "path": "nickName", "value": [{"value": "a"}, {"value": "b"}]},
        {"op": "add", "path": "nickName", "value": [{"value": "a", "display": "b"}]},
        {"op": "remove", "path": "nickName", "value": [{"value": "a"}]},
    ],
    ids=["multi-valued", "two-entries", "entry-with-other-keys", "remove"],
)
def test_list_that_is_not_a_wrapped_single_value_is_kept(operation: Json) -> None:
    assert unwrap_single_valued_list(USER_MODEL, operation) == [operation]


# -- Entra without the flag: manager as a bare id -------------------------------------------------


def test_bare_manager_id_becomes_its_value() -> None:
    operation = {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "m1"}

    assert wrap_bare_reference(USER_MODEL, operation) == [
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": {"value": "m1"}}
    ]


def test_bare_manager_id_in_a_pathless_value_becomes_its_value() -> None:
    operation = {"op": "replace", "value": {f"{ENTERPRISE}:manager": "m1", "displayName": "A"}}

    assert wrap_bare_reference(USER_MODEL, operation) == [
        {"op": "replace", "value": {f"{ENTERPRISE}:manager": {"value": "m1"}, "displayName": "A"}}
    ]


def test_bare_manager_id_in_an_extension_value_becomes_its_value() -> None:
    operation = {"op": "add", "path": ENTERPRISE, "value": {"manager": "m1", "department": "R&D"}}

    assert wrap_bare_reference(USER_MODEL, operation) == [
        {
            "op": "add",
            "path": ENTERPRISE,
            "value": {"manager": {"value": "m1"}, "department": "R&D"},
        }
    ]


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "displayName", "value": "m1"},
        {"op": "add", "path": "name", "value": "m1"},
        {"op": "add", "path": f"{ENTERPRISE}:manager.value", "value": "m1"},
    ],
    ids=["simple-attribute", "complex-without-value", "sub-attribute"],
)
def test_string_for_an_attribute_without_a_value_sub_attribute_is_kept(operation: Json) -> None:
    assert wrap_bare_reference(USER_MODEL, operation) == [operation]


# -- Entra: the Microsoft group schema URI on creation ----------------------------------------


def test_microsoft_group_schema_without_attributes_is_dropped() -> None:
    body = {"schemas": [GROUP, MICROSOFT_GROUP_SCHEMA], "displayName": "g"}

    assert drop_microsoft_group_schema(GROUP_MODEL, body) == {
        "schemas": [GROUP],
        "displayName": "g",
    }


def test_microsoft_group_schema_with_attributes_is_kept_for_validation_to_refuse() -> None:
    body = {
        "schemas": [GROUP, MICROSOFT_GROUP_SCHEMA],
        "displayName": "g",
        MICROSOFT_GROUP_SCHEMA: {"x": 1},
    }

    assert drop_microsoft_group_schema(GROUP_MODEL, body) == body


# -- the rules together, as the application calls them ---------------------------------------------


def test_entra_remove_request_is_rewritten_to_a_value_selection() -> None:
    body = patch_body({"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "u1"}]})

    assert operations_of(normalize_request("PATCH", "/Groups/g1", body)) == [
        {"op": "Remove", "path": "members", "value": [{"value": "u1"}]}
    ]


def test_entra_manager_request_with_short_path_in_a_list_is_rewritten_to_rfc_form() -> None:
    body = patch_body(
        {
            "op": "Add",
            "path": "manager",
            "value": [{"$ref": "http://x/scim/Users/m1", "value": "m1"}],
        }
    )

    assert operations_of(normalize_request("PATCH", "/Users/u1", body)) == [
        {
            "op": "Add",
            "path": f"{ENTERPRISE}:manager",
            "value": {"$ref": "http://x/scim/Users/m1", "value": "m1"},
        }
    ]


def test_entra_group_creation_is_rewritten_without_the_microsoft_schema() -> None:
    body = json.dumps({"schemas": [GROUP, MICROSOFT_GROUP_SCHEMA], "displayName": "g"}).encode()

    assert json.loads(normalize_request("POST", "/Groups", body))["schemas"] == [GROUP]


def test_rewritten_body_keeps_non_ascii_text() -> None:
    body = patch_body({"op": "Add", "path": "nickName", "value": [{"value": "Zoë"}]})

    assert operations_of(normalize_request("PATCH", "/Users/u1", body))[0]["value"] == "Zoë"
