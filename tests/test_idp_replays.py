"""What Microsoft Entra ID and Okta send, replayed over real HTTP on SQLite and PostgreSQL.

The requests are written down from each IdP's own documentation:

- ENTRA TUTORIAL: Microsoft Learn, "Tutorial: Develop and plan provisioning for a SCIM
  endpoint in Microsoft Entra ID" (requests Entra sends without the aadOptscim062020 flag);
- ENTRA KNOWN ISSUES: Microsoft Learn, "Known issues and resolutions with SCIM 2.0 protocol
  compliance of the Microsoft Entra user provisioning service", which shows each request
  "without feature flag" and "with feature flag" (``aadOptscim062020`` in the tenant URL);
- OKTA: Okta developer docs, "SCIM 2.0 protocol reference" (Okta and SCIM Version 2.0),
  including Push Groups.

Where both IdPs (or both Entra modes) do the same thing in different shapes, a test is
parametrised over the shape. The only changes to the documented values are e-mail domains:
Okta's ``@okta.local`` is a special-use domain that scim-bridge refuses (see docs/okta.md).
Every test reads the resource back and checks its state, not only the status code.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
MICROSOFT_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
AAD_FLAG = "aadOptscim062020"

Json = dict[str, Any]


# -- the documented requests ---------------------------------------------------------------

OKTA_CREATE_USER: Json = {
    "schemas": [USER],
    "userName": "test.user@example.com",
    "name": {"givenName": "Test", "familyName": "User"},
    "emails": [{"primary": True, "value": "test.user@example.com", "type": "work"}],
    "displayName": "Test User",
    "locale": "en-US",
    "externalId": "00ujl29u0le5T6Aj10h7",
    "groups": [],
    "password": "1mz050nq",
    "active": True,
}

ENTRA_CREATE_USER: Json = {
    "schemas": [USER, ENTERPRISE],
    "externalId": "0a21f0f2-8d2a-4f8e-bf98-7363c4aed4ef",
    "userName": "Test_User_00aa00aa-bb11-cc22-dd33-44ee44ee44ee",
    "active": True,
    "emails": [
        {
            "primary": True,
            "type": "work",
            "value": "Test_User_11bb11bb-cc22-dd33-ee44-55ff55ff55ff@testuser.com",
        }
    ],
    "meta": {"resourceType": "User"},
    "name": {
        "formatted": "givenName familyName",
        "familyName": "familyName",
        "givenName": "givenName",
    },
    "roles": [],
}

OKTA_CREATE_GROUP: Json = {"schemas": [GROUP], "displayName": "Test SCIMv2", "members": []}

ENTRA_CREATE_GROUP: Json = {
    "schemas": [GROUP, MICROSOFT_GROUP],
    "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
    "displayName": "displayName",
    "meta": {"resourceType": "Group"},
}


# -- helpers ---------------------------------------------------------------------------------


def create_user(scim: httpx.Client, user_name: str, **attributes: Any) -> str:
    response = scim.post("/Users", json={"schemas": [USER], "userName": user_name, **attributes})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def create_group(scim: httpx.Client, name: str, member_ids: list[str] | None = None) -> str:
    body: Json = {"schemas": [GROUP], "displayName": name}
    if member_ids:
        body["members"] = [{"value": member_id} for member_id in member_ids]
    response = scim.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def patch(scim: httpx.Client, url: str, *operations: Json) -> httpx.Response:
    """Send a PatchOp with the documented ``schemas`` and expect success."""
    response = scim.patch(url, json={"schemas": [PATCH_OP], "Operations": list(operations)})
    assert response.status_code == 200, response.text
    return response


def read(scim: httpx.Client, url: str, **params: str) -> Json:
    response = scim.get(url, params=params)
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def member_ids(scim: httpx.Client, group_id: str) -> set[str]:
    return {member["value"] for member in read(scim, f"/Groups/{group_id}").get("members", [])}


def search(scim: httpx.Client, endpoint: str, query: str) -> Json:
    """GET a search URL whose query string is written out as the IdP sends it."""
    response = scim.get(f"{endpoint}?{query}")
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


def work_emails(user: Json) -> list[str]:
    return [email["value"] for email in user.get("emails", []) if email.get("type") == "work"]


# -- creating users and groups -------------------------------------------------------------


@pytest.mark.parametrize("payload", [OKTA_CREATE_USER, ENTRA_CREATE_USER], ids=["okta", "entra"])
def test_user_is_created_from_the_documented_create_request(
    scim: httpx.Client, payload: Json
) -> None:
    created = scim.post("/Users", json=payload)
    assert created.status_code == 201, created.text

    user = read(scim, f"/Users/{created.json()['id']}")
    assert user["userName"] == payload["userName"]
    assert user["externalId"] == payload["externalId"]
    assert user["active"] is True
    assert work_emails(user) == [payload["emails"][0]["value"]]
    assert "password" not in user


@pytest.mark.parametrize("payload", [OKTA_CREATE_GROUP, ENTRA_CREATE_GROUP], ids=["okta", "entra"])
def test_group_is_created_from_the_documented_create_request(
    scim: httpx.Client, payload: Json
) -> None:
    created = scim.post("/Groups", json=payload)
    assert created.status_code == 201, created.text

    group = read(scim, f"/Groups/{created.json()['id']}")
    assert group["displayName"] == payload["displayName"]
    assert group.get("externalId") == payload.get("externalId")
    assert group.get("members", []) == []


def test_group_created_with_the_microsoft_schema_uri_lists_only_the_core_schema(
    scim: httpx.Client,
) -> None:
    created = scim.post("/Groups", json=ENTRA_CREATE_GROUP)
    assert created.status_code == 201, created.text

    assert read(scim, f"/Groups/{created.json()['id']}")["schemas"] == [GROUP]


# -- looking users and groups up -------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        urlencode({"filter": 'userName eq "test.user@example.com"', "startIndex": 1, "count": 100}),
        urlencode({"filter": 'userName eq "test.user@example.com"'}),
        f"{AAD_FLAG}&" + urlencode({"filter": 'userName eq "test.user@example.com"'}),
    ],
    ids=["okta", "entra", "entra-aadOptscim062020"],
)
def test_user_is_found_by_user_name(scim: httpx.Client, query: str) -> None:
    user_id = create_user(scim, "test.user@example.com")

    found = search(scim, "/Users", query)

    assert found["totalResults"] == 1
    assert [user["id"] for user in found["Resources"]] == [user_id]


@pytest.mark.parametrize(
    "query",
    [
        urlencode({"filter": 'userName eq "nobody@example.com"', "startIndex": 1, "count": 100}),
        urlencode({"filter": 'userName eq "non-existent user"'}),
    ],
    ids=["okta", "entra"],
)
def test_lookup_of_an_unknown_user_answers_an_empty_list(scim: httpx.Client, query: str) -> None:
    create_user(scim, "someone@example.com")

    found = search(scim, "/Users", query)

    assert found["schemas"] == [LIST_RESPONSE]
    assert found["totalResults"] == 0
    assert found["Resources"] == []


@pytest.mark.parametrize("endpoint", ["/Users", "/Groups"])
def test_okta_import_pages_by_start_index_and_count(scim: httpx.Client, endpoint: str) -> None:
    user_ids = [create_user(scim, f"user{n}@example.com") for n in range(3)]
    if endpoint == "/Groups":
        ids = [create_group(scim, f"group{n}", user_ids[:1]) for n in range(3)]
    else:
        ids = user_ids

    first = search(scim, endpoint, urlencode({"startIndex": 1, "count": 2}))
    second = search(scim, endpoint, urlencode({"startIndex": 3, "count": 2}))

    assert (first["totalResults"], first["startIndex"], first["itemsPerPage"]) == (3, 1, 2)
    assert (second["totalResults"], second["startIndex"], second["itemsPerPage"]) == (3, 3, 1)
    paged = [resource["id"] for page in (first, second) for resource in page["Resources"]]
    assert sorted(paged) == sorted(ids)


def test_user_is_found_by_external_id(scim: httpx.Client) -> None:
    user_id = create_user(scim, "jyoung@testuser.com", externalId="jyoung")
    create_user(scim, "other@testuser.com", externalId="JYOUNG")

    found = search(scim, "/Users", urlencode({"filter": 'externalId eq "jyoung"'}))

    assert [user["id"] for user in found["Resources"]] == [user_id]


def test_user_is_found_by_work_email(scim: httpx.Client) -> None:
    user_id = create_user(
        scim, "jyoung@testuser.com", emails=[{"type": "work", "value": "jyoung@contoso.com"}]
    )
    create_user(
        scim, "other@testuser.com", emails=[{"type": "home", "value": "jyoung@contoso.com"}]
    )

    found = search(
        scim,
        "/Users",
        urlencode({"filter": 'emails[type eq "work"].value eq "jyoung@contoso.com"'}),
    )

    assert [user["id"] for user in found["Resources"]] == [user_id]


def test_group_lookup_by_display_name_leaves_members_out(scim: httpx.Client) -> None:
    alice = create_user(scim, "alice@example.com")
    group_id = create_group(scim, "displayName", [alice])

    found = search(
        scim,
        "/Groups",
        urlencode({"excludedAttributes": "members", "filter": 'displayName eq "displayName"'}),
    )

    assert [group["id"] for group in found["Resources"]] == [group_id]
    assert "members" not in found["Resources"][0]


def test_group_read_leaves_members_out_when_excluded(scim: httpx.Client) -> None:
    alice = create_user(scim, "alice@example.com")
    group_id = create_group(scim, "Engineering", [alice])

    group = read(scim, f"/Groups/{group_id}", excludedAttributes="members")

    assert group["displayName"] == "Engineering"
    assert "members" not in group


def test_member_existence_check_finds_the_group_only_when_the_user_is_a_member(
    scim: httpx.Client,
) -> None:
    member = create_user(scim, "alice@example.com")
    outsider = create_user(scim, "bob@example.com")
    group_id = create_group(scim, "Engineering", [member])

    def check(user_id: str) -> Json:
        query = urlencode(
            {
                "filter": f'id eq "{group_id}" and members eq "{user_id}"',
                "excludedAttributes": "members",
            }
        )
        return search(scim, "/Groups", query)

    found = check(member)
    assert [group["id"] for group in found["Resources"]] == [group_id]
    assert "members" not in found["Resources"][0]
    assert check(outsider)["totalResults"] == 0


# -- the aadOptscim062020 flag in the tenant URL ----------------------------------------------


def test_aad_flag_in_the_url_of_a_create_is_ignored(scim: httpx.Client) -> None:
    created = scim.post(f"/Users?{AAD_FLAG}", json=ENTRA_CREATE_USER)
    assert created.status_code == 201, created.text

    assert read(scim, f"/Users/{created.json()['id']}")["userName"] == ENTRA_CREATE_USER["userName"]


def test_aad_flag_in_the_url_of_a_patch_is_ignored(scim: httpx.Client) -> None:
    user_id = create_user(scim, "alice@example.com")

    patch(scim, f"/Users/{user_id}?{AAD_FLAG}", {"op": "replace", "path": "active", "value": False})

    assert read(scim, f"/Users/{user_id}")["active"] is False


# -- updating users --------------------------------------------------------------------------


def test_okta_get_then_put_updates_the_user_and_keeps_its_groups(scim: httpx.Client) -> None:
    created = scim.post("/Users", json=OKTA_CREATE_USER)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]
    group_id = create_group(scim, "Test SCIMv2", [user_id])

    current = read(scim, f"/Users/{user_id}")
    current["name"] = {"givenName": "Another", "middleName": "Excited", "familyName": "User"}
    replaced = scim.put(f"/Users/{user_id}", json=current)
    assert replaced.status_code == 200, replaced.text

    user = read(scim, f"/Users/{user_id}")
    assert user["name"] == {"givenName": "Another", "middleName": "Excited", "familyName": "User"}
    assert user["userName"] == OKTA_CREATE_USER["userName"]
    assert [group["value"] for group in user["groups"]] == [group_id]


def test_okta_put_with_empty_groups_keeps_the_group_memberships(scim: httpx.Client) -> None:
    user_id = create_user(scim, "test.user@example.com")
    group_id = create_group(scim, "Test SCIMv2", [user_id])

    replaced = scim.put(
        f"/Users/{user_id}",
        json={
            "schemas": [USER],
            "id": user_id,
            "userName": "test.user@example.com",
            "name": {"givenName": "Another", "middleName": "Excited", "familyName": "User"},
            "emails": [
                {
                    "primary": True,
                    "value": "test.user@example.com",
                    "type": "work",
                    "display": "test.user@example.com",
                }
            ],
            "active": True,
            "groups": [],
            "meta": {"resourceType": "User"},
        },
    )
    assert replaced.status_code == 200, replaced.text

    assert member_ids(scim, group_id) == {user_id}
    assert read(scim, f"/Users/{user_id}")["name"]["middleName"] == "Excited"


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "value": {"active": False}},
        {"op": "Replace", "path": "active", "value": "False"},
        {"op": "replace", "path": "active", "value": False},
    ],
    ids=["okta", "entra", "entra-aadOptscim062020"],
)
def test_patch_deactivates_the_user(scim: httpx.Client, operation: Json) -> None:
    user_id = create_user(scim, "alice@example.com", active=True)

    patch(scim, f"/Users/{user_id}", operation)

    assert read(scim, f"/Users/{user_id}")["active"] is False


@pytest.mark.parametrize(
    ("initial", "sent", "expected"),
    [(True, "False", False), (False, "True", True), (True, "false", False)],
    ids=["False", "True", "false"],
)
def test_boolean_sent_as_a_string_is_read_as_a_boolean(
    scim: httpx.Client, initial: bool, sent: str, expected: bool
) -> None:
    user_id = create_user(scim, "alice@example.com", active=initial)

    patch(scim, f"/Users/{user_id}", {"op": "Replace", "path": "active", "value": sent})

    assert read(scim, f"/Users/{user_id}")["active"] is expected


@pytest.mark.parametrize(
    ("operation", "attribute", "expected"),
    [
        ({"op": "Add", "path": "title", "value": "Engineer"}, "title", "Engineer"),
        ({"op": "Replace", "path": "displayName", "value": "Pvlo"}, "displayName", "Pvlo"),
        ({"op": "Remove", "path": "nickName"}, "nickName", None),
    ],
    ids=["Add", "Replace", "Remove"],
)
def test_capitalised_op_is_applied(
    scim: httpx.Client, operation: Json, attribute: str, expected: str | None
) -> None:
    user_id = create_user(scim, "alice@example.com", displayName="Alice", nickName="Babs")

    patch(scim, f"/Users/{user_id}", operation)

    assert read(scim, f"/Users/{user_id}").get(attribute) == expected


@pytest.mark.parametrize(
    "operations",
    [
        [
            {"op": "Replace", "path": "displayName", "value": "Pvlo"},
            {
                "op": "Replace",
                "path": 'emails[type eq "work"].value',
                "value": "TestBcwqnm@test.microsoft.com",
            },
            {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
            {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
            {"op": "Replace", "path": "externalId", "value": "Eqpj"},
            {"op": "Replace", "path": f"{ENTERPRISE}:employeeNumber", "value": "Eqpj"},
        ],
        [
            {
                "op": "replace",
                "path": 'emails[type eq "work"].value',
                "value": "TestBcwqnm@test.microsoft.com",
            },
            {
                "op": "replace",
                "value": {
                    "displayName": "Pvlo",
                    "name.givenName": "Gtfd",
                    "name.familyName": "Pkqf",
                    "externalId": "Eqpj",
                    f"{ENTERPRISE}:employeeNumber": "Eqpj",
                },
            },
        ],
        [
            {
                "op": "replace",
                "value": {
                    "displayName": "Pvlo",
                    'emails[type eq "work"].value': "TestBcwqnm@test.microsoft.com",
                    "name.givenName": "Gtfd",
                    "name.familyName": "Pkqf",
                    "externalId": "Eqpj",
                    f"{ENTERPRISE}:employeeNumber": "Eqpj",
                },
            },
        ],
    ],
    ids=["entra", "entra-aadOptscim062020", "entra-aadOptscim062020-filter-in-value"],
)
def test_replace_of_multiple_attributes_sets_each_of_them(
    scim: httpx.Client, operations: list[Json]
) -> None:
    created = scim.post("/Users", json=ENTRA_CREATE_USER)
    assert created.status_code == 201, created.text
    user_id = created.json()["id"]

    patch(scim, f"/Users/{user_id}", *operations)

    user = read(scim, f"/Users/{user_id}")
    assert user["displayName"] == "Pvlo"
    assert user["name"]["givenName"] == "Gtfd"
    assert user["name"]["familyName"] == "Pkqf"
    assert user["externalId"] == "Eqpj"
    assert user[ENTERPRISE]["employeeNumber"] == "Eqpj"
    assert work_emails(user) == ["TestBcwqnm@test.microsoft.com"]


def test_replace_of_the_work_email_changes_only_that_email(scim: httpx.Client) -> None:
    user_id = create_user(
        scim,
        "alice@example.com",
        emails=[
            {"type": "work", "value": "old@contoso.com", "primary": True},
            {"type": "home", "value": "alice@home.example.com"},
        ],
    )

    patch(
        scim,
        f"/Users/{user_id}",
        {
            "op": "Replace",
            "path": 'emails[type eq "work"].value',
            "value": "updatedEmail@microsoft.com",
        },
        {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"},
    )

    user = read(scim, f"/Users/{user_id}")
    assert {e["type"]: e["value"] for e in user["emails"]} == {
        "work": "updatedEmail@microsoft.com",
        "home": "alice@home.example.com",
    }
    assert user["name"]["familyName"] == "updatedFamilyName"


@pytest.mark.parametrize("op", ["Add", "add", "Replace"])
def test_write_to_the_work_email_creates_it_when_missing(scim: httpx.Client, op: str) -> None:
    user_id = create_user(scim, "alice@example.com")

    patch(
        scim,
        f"/Users/{user_id}",
        {"op": op, "path": 'emails[type eq "work"].value', "value": "alice@contoso.com"},
    )

    emails = read(scim, f"/Users/{user_id}")["emails"]
    assert [(e["type"], e["value"]) for e in emails] == [("work", "alice@contoso.com")]


@pytest.mark.parametrize(
    "value", [[{"value": "Babs"}], "Babs"], ids=["entra", "entra-aadOptscim062020"]
)
def test_single_valued_attribute_is_set_whether_or_not_wrapped_in_a_list(
    scim: httpx.Client, value: Any
) -> None:
    user_id = create_user(scim, "barbara@example.com")

    patch(scim, f"/Users/{user_id}", {"op": "Add", "path": "nickName", "value": value})

    assert read(scim, f"/Users/{user_id}")["nickName"] == "Babs"


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "Add", "path": f"{ENTERPRISE}:manager", "value": "{manager}"},
        {"op": "Add", "path": "manager", "value": [{"$ref": None, "value": "{manager}"}]},
        {
            "op": "Add",
            "path": f"{ENTERPRISE}:manager",
            "value": [{"$ref": None, "value": "{manager}"}],
        },
        {"op": "Replace", "value": {f"{ENTERPRISE}:manager": "{manager}"}},
        {"op": "add", "path": f"{ENTERPRISE}:manager", "value": {"value": "{manager}"}},
    ],
    ids=["bare-string", "short-path-in-a-list", "in-a-list", "bare-string-without-path", "rfc"],
)
def test_manager_reference_is_stored_as_its_value(scim: httpx.Client, operation: Json) -> None:
    manager_id = create_user(scim, "boss@example.com")
    user_id = create_user(scim, "alice@example.com")
    sent = _fill(operation, "{manager}", manager_id)

    patch(scim, f"/Users/{user_id}", sent)

    user = read(scim, f"/Users/{user_id}")
    assert user[ENTERPRISE]["manager"]["value"] == manager_id


def test_user_is_deleted(scim: httpx.Client) -> None:
    user_id = create_user(scim, "alice@example.com")

    assert scim.delete(f"/Users/{user_id}").status_code == 204

    assert scim.get(f"/Users/{user_id}").status_code == 404


# -- updating groups (Okta Push Groups, Entra group provisioning) ------------------------------


@pytest.mark.parametrize(
    "operation",
    [
        {
            "op": "add",
            "path": "members",
            "value": [{"value": "{user}", "display": "test.user@example.com"}],
        },
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": "{user}"}]},
        {"op": "add", "path": "members", "value": [{"value": "{user}"}]},
    ],
    ids=["okta", "entra", "entra-aadOptscim062020"],
)
def test_member_is_added(scim: httpx.Client, operation: Json) -> None:
    existing = create_user(scim, "alice@example.com")
    user_id = create_user(scim, "test.user@example.com")
    group_id = create_group(scim, "Test SCIMv2", [existing])

    patch(scim, f"/Groups/{group_id}", _fill(operation, "{user}", user_id))

    assert member_ids(scim, group_id) == {existing, user_id}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": 'members[value eq "{user}"]'},
        {"op": "Remove", "path": "members", "value": [{"value": "{user}"}]},
        {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "{user}"}]},
    ],
    ids=["okta-and-entra-aadOptscim062020", "entra-known-issues", "entra-tutorial"],
)
def test_member_removal_removes_only_that_member(scim: httpx.Client, operation: Json) -> None:
    alice = create_user(scim, "alice@example.com")
    bob = create_user(scim, "bob@example.com")
    carol = create_user(scim, "carol@example.com")
    group_id = create_group(scim, "Engineering", [alice, bob, carol])

    patch(scim, f"/Groups/{group_id}", _fill(operation, "{user}", bob))

    assert member_ids(scim, group_id) == {alice, carol}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "add", "path": "members", "value": [{"value": "{user}", "display": "alice"}]},
        {"op": "Add", "path": "members", "value": [{"$ref": None, "value": "{user}"}]},
    ],
    ids=["okta", "entra"],
)
def test_adding_an_existing_member_again_keeps_one_membership(
    scim: httpx.Client, operation: Json
) -> None:
    alice = create_user(scim, "alice@example.com")
    group_id = create_group(scim, "Engineering", [alice])

    patch(scim, f"/Groups/{group_id}", _fill(operation, "{user}", alice))

    members = read(scim, f"/Groups/{group_id}")["members"]
    assert [member["value"] for member in members] == [alice]


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "remove", "path": 'members[value eq "{user}"]'},
        {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": "{user}"}]},
    ],
    ids=["okta-and-entra-aadOptscim062020", "entra"],
)
def test_removing_a_user_who_is_no_member_succeeds_and_changes_nothing(
    scim: httpx.Client, operation: Json
) -> None:
    alice = create_user(scim, "alice@example.com")
    bob = create_user(scim, "bob@example.com")
    group_id = create_group(scim, "Engineering", [alice])

    patch(scim, f"/Groups/{group_id}", _fill(operation, "{user}", bob))

    assert member_ids(scim, group_id) == {alice}


def test_member_removal_by_value_removes_only_the_listed_members(scim: httpx.Client) -> None:
    alice = create_user(scim, "alice@example.com")
    bob = create_user(scim, "bob@example.com")
    carol = create_user(scim, "carol@example.com")
    group_id = create_group(scim, "Engineering", [alice, bob, carol])

    patch(
        scim,
        f"/Groups/{group_id}",
        {"op": "Remove", "path": "members", "value": [{"value": alice}, {"value": carol}]},
    )

    assert member_ids(scim, group_id) == {bob}


def test_okta_membership_patch_removes_and_adds_in_one_request(scim: httpx.Client) -> None:
    leaving = create_user(scim, "leaving@example.com")
    staying = create_user(scim, "staying@example.com")
    joining = create_user(scim, "test.user@example.com")
    group_id = create_group(scim, "Test SCIMv2", [leaving, staying])

    patch(
        scim,
        f"/Groups/{group_id}",
        {"op": "remove", "path": f'members[value eq "{leaving}"]'},
        {
            "op": "add",
            "path": "members",
            "value": [{"value": joining, "display": "test.user@example.com"}],
        },
    )

    assert member_ids(scim, group_id) == {staying, joining}


def test_okta_replace_of_members_sets_the_whole_membership(scim: httpx.Client) -> None:
    dropped = create_user(scim, "dropped@example.com")
    first = create_user(scim, "first@example.com")
    second = create_user(scim, "second@example.com")
    group_id = create_group(scim, "Test SCIMv2", [dropped, first])

    patch(
        scim,
        f"/Groups/{group_id}",
        {
            "op": "replace",
            "path": "members",
            "value": [
                {"value": first, "display": "first@example.com"},
                {"value": second, "display": "second@example.com"},
            ],
        },
    )

    assert member_ids(scim, group_id) == {first, second}


def test_okta_replace_of_members_with_an_empty_list_empties_the_group(scim: httpx.Client) -> None:
    alice = create_user(scim, "alice@example.com")
    group_id = create_group(scim, "Test SCIMv2", [alice])

    patch(scim, f"/Groups/{group_id}", {"op": "replace", "path": "members", "value": []})

    assert member_ids(scim, group_id) == set()


def test_okta_put_of_a_group_sets_its_name_and_members(scim: httpx.Client) -> None:
    dropped = create_user(scim, "dropped@example.com")
    kept = create_user(scim, "test.user@example.com")
    group_id = create_group(scim, "Test SCIMv2", [dropped])

    replaced = scim.put(
        f"/Groups/{group_id}",
        json={
            "schemas": [GROUP],
            "id": group_id,
            "displayName": "Test SCIMv20",
            "members": [{"value": kept, "display": "test.user@example.com"}],
        },
    )
    assert replaced.status_code == 200, replaced.text

    assert read(scim, f"/Groups/{group_id}")["displayName"] == "Test SCIMv20"
    assert member_ids(scim, group_id) == {kept}


@pytest.mark.parametrize(
    "operation",
    [
        {"op": "replace", "value": {"id": "{group}", "displayName": "Test SCIMv20"}},
        {"op": "Replace", "path": "displayName", "value": "Test SCIMv20"},
    ],
    ids=["okta", "entra"],
)
def test_group_rename_keeps_its_members(scim: httpx.Client, operation: Json) -> None:
    alice = create_user(scim, "alice@example.com")
    group_id = create_group(scim, "Test SCIMv2", [alice])

    patch(scim, f"/Groups/{group_id}", _fill(operation, "{group}", group_id))

    group = read(scim, f"/Groups/{group_id}")
    assert group["displayName"] == "Test SCIMv20"
    assert {member["value"] for member in group["members"]} == {alice}


def test_okta_rename_naming_another_id_is_refused_and_changes_nothing(scim: httpx.Client) -> None:
    group_id = create_group(scim, "Test SCIMv2")

    response = scim.patch(
        f"/Groups/{group_id}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [
                {"op": "replace", "value": {"id": "another-id", "displayName": "Test SCIMv20"}}
            ],
        },
    )

    assert response.status_code == 400
    assert response.json()["scimType"] == "mutability"
    assert read(scim, f"/Groups/{group_id}")["displayName"] == "Test SCIMv2"


def test_group_is_deleted(scim: httpx.Client) -> None:
    alice = create_user(scim, "alice@example.com")
    group_id = create_group(scim, "Test SCIMv2", [alice])

    assert scim.delete(f"/Groups/{group_id}").status_code == 204

    assert scim.get(f"/Groups/{group_id}").status_code == 404
    assert read(scim, f"/Users/{alice}").get("groups", []) == []


# -- responses -------------------------------------------------------------------------------


def test_user_patch_answers_200_with_the_updated_user(scim: httpx.Client) -> None:
    user_id = create_user(scim, "alice@example.com")

    response = patch(scim, f"/Users/{user_id}", {"op": "replace", "value": {"active": False}})

    body = response.json()
    assert body["id"] == user_id
    assert body["active"] is False
    assert body == read(scim, f"/Users/{user_id}")


def test_group_patch_answers_200_with_the_updated_group(scim: httpx.Client) -> None:
    alice = create_user(scim, "alice@example.com")
    group_id = create_group(scim, "Test SCIMv2")

    response = patch(
        scim, f"/Groups/{group_id}", {"op": "add", "path": "members", "value": [{"value": alice}]}
    )

    body = response.json()
    assert body["id"] == group_id
    assert [member["value"] for member in body["members"]] == [alice]
    assert body == read(scim, f"/Groups/{group_id}")


def _fill(template: Any, placeholder: str, value: str) -> Any:
    """The documented request with a placeholder replaced by an id known only at run time."""
    if isinstance(template, dict):
        return {
            _fill(k, placeholder, value): _fill(v, placeholder, value) for k, v in template.items()
        }
    if isinstance(template, list):
        return [_fill(item, placeholder, value) for item in template]
    if isinstance(template, str):
        return template.replace(placeholder, value)
    return template
