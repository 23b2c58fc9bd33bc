"""Bad input gets the right SCIM error (RFC 7644 §3.12) and changes nothing, on both databases.

Every error is checked for the Error schema, ``status`` as a string and the ``scimType``; every
refused write is checked by reading the state back (resources, their members and versions).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from scim_bridge.config import Settings
from tests.server import create_token, run_server

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
SCIM_JSON = "application/scim+json"


# -- helpers ---------------------------------------------------------------------------------------


def assert_error(
    response: httpx.Response, status: int, scim_type: str | None = None, *mentions: str
) -> dict[str, Any]:
    """A SCIM error of ``status`` and ``scim_type``, whose detail names each of ``mentions``."""
    assert response.status_code == status, (
        f"expected {status}, got {response.status_code}: {response.text}"
    )
    assert response.headers["content-type"].startswith(SCIM_JSON), response.headers
    body = response.json()
    assert body["schemas"] == [ERROR], body
    assert body["status"] == str(status), f"status must be the string {str(status)!r}: {body}"
    if scim_type is None:
        assert "scimType" not in body, body
    else:
        assert body.get("scimType") == scim_type, body
    detail = body.get("detail") or ""
    for mention in mentions:
        assert mention in detail, f"{mention!r} not named in the detail: {detail!r}"
    return dict(body)


def snapshot(scim: httpx.Client) -> dict[str, list[dict[str, Any]]]:
    """Everything stored: every user and group, with its members, groups, meta and version."""
    state = {}
    for endpoint in ("Users", "Groups"):
        response = scim.get(f"/{endpoint}", params={"count": 1000})
        assert response.status_code == 200, response.text
        state[endpoint] = sorted(response.json().get("Resources", []), key=lambda r: r["id"])
    return state


def create_user(scim: httpx.Client, user_name: str, **attributes: Any) -> dict[str, Any]:
    response = scim.post("/Users", json={"schemas": [USER], "userName": user_name, **attributes})
    assert response.status_code == 201, response.text
    return dict(response.json())


def create_group(
    scim: httpx.Client, name: str, members: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [GROUP], "displayName": name}
    if members is not None:
        body["members"] = members
    response = scim.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def patch_op(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def member_ids(scim: httpx.Client, group_id: str) -> set[str]:
    response = scim.get(f"/Groups/{group_id}")
    assert response.status_code == 200, response.text
    return {m["value"] for m in response.json().get("members", [])}


def assert_names_cycle(error: dict[str, Any], *cycle: str) -> None:
    """The detail names ``cycle`` (``"A", "B"`` for A → B → A), starting at any of its groups."""
    detail = error.get("detail") or ""
    rotations = [" → ".join([*cycle[i:], *cycle[:i], cycle[i]]) for i in range(len(cycle))]
    assert any(rotation in detail for rotation in rotations), (
        f"the cycle {' → '.join([*cycle, cycle[0]])} is not named in {detail!r}"
    )


@contextmanager
def server_with(settings: Settings, **overrides: Any) -> Iterator[httpx.Client]:
    """Another live server on the test's database, with some settings changed."""
    token = asyncio.run(create_token(settings.database_url, f"errors-{uuid.uuid4().hex[:8]}"))
    changed = Settings.model_validate({**settings.model_dump(), **overrides})
    with (
        run_server(changed, token) as server,
        httpx.Client(
            base_url=server.scim_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client,
    ):
        yield client


@pytest.fixture
def alice(scim: httpx.Client) -> dict[str, Any]:
    return create_user(
        scim,
        "alice",
        displayName="Alice",
        emails=[{"value": "alice@example.com", "type": "work", "primary": True}],
    )


# -- malformed bodies ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b'{"schemas": [', b"not json", b'{"schemas": ["' + USER.encode() + b'"], "userName": }'],
    ids=["truncated", "not-json", "missing-value"],
)
def test_malformed_json_is_invalid_syntax(
    scim: httpx.Client, alice: dict[str, Any], body: bytes
) -> None:
    before = snapshot(scim)
    headers = {"Content-Type": SCIM_JSON}
    assert_error(scim.post("/Users", content=body, headers=headers), 400, "invalidSyntax")
    assert_error(scim.post("/Groups", content=body, headers=headers), 400, "invalidSyntax")
    uid = alice["id"]
    assert_error(scim.put(f"/Users/{uid}", content=body, headers=headers), 400, "invalidSyntax")
    assert_error(scim.patch(f"/Users/{uid}", content=body, headers=headers), 400, "invalidSyntax")
    assert_error(scim.post("/Users/.search", content=body, headers=headers), 400, "invalidSyntax")
    assert snapshot(scim) == before


def test_body_that_is_not_an_object_is_invalid_syntax(scim: httpx.Client) -> None:
    before = snapshot(scim)
    assert_error(scim.post("/Users", json=[{"userName": "x"}]), 400, "invalidSyntax")
    assert_error(scim.post("/Users", json="alice"), 400, "invalidSyntax")
    assert snapshot(scim) == before


def test_wrong_schemas_are_refused(scim: httpx.Client, alice: dict[str, Any]) -> None:
    before = snapshot(scim)
    uid = alice["id"]
    assert_error(
        scim.post("/Users", json={"schemas": [GROUP], "userName": "bob"}),
        400,
        "invalidSyntax",
        USER,
    )
    assert_error(
        scim.post("/Groups", json={"schemas": [USER], "displayName": "Eng"}),
        400,
        "invalidSyntax",
        GROUP,
    )
    assert_error(
        scim.put(f"/Users/{uid}", json={"schemas": [GROUP], "userName": "alice2"}),
        400,
        "invalidSyntax",
        USER,
    )
    wrong_patch = {
        "schemas": [USER],
        "Operations": [{"op": "replace", "path": "displayName", "value": "x"}],
    }
    assert_error(scim.patch(f"/Users/{uid}", json=wrong_patch), 400, "invalidSyntax", PATCH_OP)
    assert snapshot(scim) == before


def test_missing_schemas_are_refused(scim: httpx.Client, alice: dict[str, Any]) -> None:
    """``schemas`` is REQUIRED (RFC 7643 §3; RFC 7644 §3.5.2 for PatchOp), empty or absent."""
    before = snapshot(scim)
    uid = alice["id"]
    no_schemas: list[dict[str, Any]] = [{}, {"schemas": []}]
    for schemas in no_schemas:
        assert_error(
            scim.post("/Users", json={**schemas, "userName": "bob"}), 400, "invalidValue", USER
        )
        assert_error(
            scim.post("/Groups", json={**schemas, "displayName": "Eng"}),
            400,
            "invalidValue",
            GROUP,
        )
        assert_error(
            scim.put(f"/Users/{uid}", json={**schemas, "userName": "alice2"}),
            400,
            "invalidValue",
            USER,
        )
        operations = [{"op": "replace", "path": "displayName", "value": "x"}]
        assert_error(
            scim.patch(f"/Users/{uid}", json={**schemas, "Operations": operations}),
            400,
            "invalidValue",
            PATCH_OP,
        )
    assert snapshot(scim) == before


def test_unknown_attribute_is_refused(scim: httpx.Client, alice: dict[str, Any]) -> None:
    before = snapshot(scim)
    uid = alice["id"]
    assert_error(
        scim.post("/Users", json={"schemas": [USER], "userName": "bob", "shoeSize": 44}),
        400,
        "invalidSyntax",
        "shoeSize",
    )
    assert_error(
        scim.post("/Groups", json={"schemas": [GROUP], "displayName": "Eng", "colour": "red"}),
        400,
        "invalidSyntax",
        "colour",
    )
    assert_error(
        scim.put(f"/Users/{uid}", json={"schemas": [USER], "userName": "alice", "shoeSize": 44}),
        400,
        "invalidSyntax",
        "shoeSize",
    )
    unknown_path = patch_op({"op": "replace", "path": "shoeSize", "value": 44})
    assert_error(scim.patch(f"/Users/{uid}", json=unknown_path), 400, "invalidPath", "shoeSize")
    unknown_in_value = patch_op({"op": "add", "value": {"shoeSize": 44}})
    assert_error(
        scim.patch(f"/Users/{uid}", json=unknown_in_value), 400, "invalidValue", "shoeSize"
    )
    assert snapshot(scim) == before


def test_unknown_extension_schema_is_refused(scim: httpx.Client) -> None:
    extension = "urn:example:params:scim:schemas:extension:shoes:2.0:User"
    before = snapshot(scim)
    response = scim.post(
        "/Users",
        json={"schemas": [USER, extension], "userName": "bob", extension: {"size": 44}},
    )
    assert_error(response, 400, "invalidSyntax")
    assert snapshot(scim) == before


# -- body size -------------------------------------------------------------------------------------


def test_body_over_max_body_bytes_is_413_before_parsing(
    scim: httpx.Client, settings: Settings, alice: dict[str, Any]
) -> None:
    limit = 1024
    before = snapshot(scim)
    with server_with(settings, max_body_bytes=limit) as small:
        headers = {"Content-Type": SCIM_JSON}
        # Not JSON at all: a 413, not a 400, shows the size was checked before parsing.
        garbage = b"{" * (limit + 1)
        assert_error(small.post("/Users", content=garbage, headers=headers), 413, None, str(limit))
        big_user = {"schemas": [USER], "userName": "bob", "displayName": "x" * limit}
        assert_error(small.post("/Users", json=big_user), 413, None, "max_body_bytes")
        big_patch = patch_op({"op": "replace", "path": "displayName", "value": "x" * limit})
        assert_error(small.patch(f"/Users/{alice['id']}", json=big_patch), 413)

        # Without Content-Length (chunked), the limit holds while reading.
        def chunks() -> Iterator[bytes]:
            yield json.dumps(big_user).encode()

        request = small.build_request("POST", "/Users", content=chunks(), headers=headers)
        assert "content-length" not in request.headers
        assert_error(small.send(request), 413)
        assert snapshot(scim) == before
        # A body within the limit is served.
        assert small.post("/Users", json={"schemas": [USER], "userName": "bob"}).status_code == 201


# -- pagination ------------------------------------------------------------------------------------


def test_huge_count_is_clamped_to_max_results(scim: httpx.Client, settings: Settings) -> None:
    """RFC 7644 §3.4.2.4: a count over the maximum is answered with at most maxResults."""
    with server_with(settings, max_page_size=3) as small:
        config = small.get("/ServiceProviderConfig").json()
        announced = config["filter"]["maxResults"]
        assert announced == 3
        assert config["pagination"]["maxPageSize"] == 3
        for i in range(5):
            create_user(small, f"user{i}")
        for params in ({"count": 10**9}, {"count": 4}, {}):
            page = small.get("/Users", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            assert body["totalResults"] == 5
            assert body["itemsPerPage"] <= announced, body
            assert len(body["Resources"]) == body["itemsPerPage"] == 3
        found = small.post("/Users/.search", json={"schemas": [SEARCH], "count": 10**9})
        assert found.status_code == 200, found.text
        assert found.json()["itemsPerPage"] <= announced
        # The last page is short, and pages do not overlap.
        second = small.get("/Users", params={"count": 10**9, "startIndex": 4}).json()
        assert second["itemsPerPage"] == 2
        first = small.get("/Users", params={"count": 10**9}).json()
        ids = [r["id"] for r in first["Resources"] + second["Resources"]]
        assert len(set(ids)) == 5


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"count": "ten"}, "count"),
        ({"count": "1.5"}, "count"),
        ({"count": ""}, "count"),
        ({"startIndex": "first"}, "startIndex"),
        ({"startIndex": "2.5"}, "startIndex"),
    ],
)
def test_non_integer_count_or_start_index_is_invalid_value(
    scim: httpx.Client, params: dict[str, str], named: str
) -> None:
    assert_error(scim.get("/Users", params=params), 400, "invalidValue", named)
    assert_error(scim.get("/Groups", params=params), 400, "invalidValue", named)


def test_out_of_range_count_and_start_index_are_interpreted(
    scim: httpx.Client, alice: dict[str, Any]
) -> None:
    """RFC 7644 §3.4.2.4: a negative count is 0, a startIndex below 1 is 1."""
    negative = scim.get("/Users", params={"count": -5}).json()
    assert negative["totalResults"] == 1
    assert negative["itemsPerPage"] == 0
    assert negative.get("Resources", []) == []
    zero = scim.get("/Users", params={"startIndex": 0}).json()
    assert zero["startIndex"] == 1
    assert [r["id"] for r in zero["Resources"]] == [alice["id"]]


# -- filters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "userName eq",
        'userName xx "alice"',
        '(userName eq "alice"',
        'userName eq "alice" and',
        'emails[type eq "work"',
        'shoeSize eq "44"',
        "userName eq 5",
        'meta.lastModified gt "yesterday"',
        'userName eq "alice" or',
    ],
)
def test_invalid_filter_is_invalid_filter(
    scim: httpx.Client, alice: dict[str, Any], expression: str
) -> None:
    before = snapshot(scim)
    assert_error(scim.get("/Users", params={"filter": expression}), 400, "invalidFilter")
    searched = scim.post("/Users/.search", json={"schemas": [SEARCH], "filter": expression})
    assert_error(searched, 400, "invalidFilter")
    assert snapshot(scim) == before


def test_invalid_filter_on_groups_is_invalid_filter(scim: httpx.Client) -> None:
    assert_error(scim.get("/Groups", params={"filter": "displayName eq"}), 400, "invalidFilter")
    assert_error(scim.get("/Groups", params={"filter": 'userName eq "x"'}), 400, "invalidFilter")


# -- uniqueness ------------------------------------------------------------------------------------


def test_duplicate_user_name_is_409_case_insensitively(
    scim: httpx.Client, alice: dict[str, Any]
) -> None:
    bob = create_user(scim, "bob")
    before = snapshot(scim)
    for taken in ("alice", "ALICE", "Alice"):
        assert_error(
            scim.post("/Users", json={"schemas": [USER], "userName": taken}),
            409,
            "uniqueness",
            taken,
        )
    assert_error(
        scim.put(f"/Users/{bob['id']}", json={"schemas": [USER], "userName": "aLiCe"}),
        409,
        "uniqueness",
    )
    rename = patch_op({"op": "replace", "path": "userName", "value": "ALICE"})
    assert_error(scim.patch(f"/Users/{bob['id']}", json=rename), 409, "uniqueness")
    assert snapshot(scim) == before


def test_duplicate_group_display_name_is_409(scim: httpx.Client) -> None:
    create_group(scim, "Engineering")
    other = create_group(scim, "Sales")
    before = snapshot(scim)
    for taken in ("Engineering", "ENGINEERING", "engineering"):
        assert_error(
            scim.post("/Groups", json={"schemas": [GROUP], "displayName": taken}),
            409,
            "uniqueness",
            taken,
        )
    assert_error(
        scim.put(f"/Groups/{other['id']}", json={"schemas": [GROUP], "displayName": "engineering"}),
        409,
        "uniqueness",
    )
    rename = patch_op({"op": "replace", "path": "displayName", "value": "Engineering"})
    assert_error(scim.patch(f"/Groups/{other['id']}", json=rename), 409, "uniqueness")
    assert snapshot(scim) == before


# -- PATCH -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["frobnicate", "delete", "copy", ""])
def test_patch_with_unknown_op_is_invalid_value(
    scim: httpx.Client, alice: dict[str, Any], op: str
) -> None:
    before = snapshot(scim)
    body = patch_op({"op": op, "path": "displayName", "value": "x"})
    detail = assert_error(scim.patch(f"/Users/{alice['id']}", json=body), 400, "invalidValue")
    if op:
        assert op in detail["detail"]
    assert snapshot(scim) == before


def test_patch_without_operations_is_invalid_value(
    scim: httpx.Client, alice: dict[str, Any]
) -> None:
    before = snapshot(scim)
    uid = alice["id"]
    assert_error(scim.patch(f"/Users/{uid}", json={"schemas": [PATCH_OP]}), 400, "invalidValue")
    empty = {"schemas": [PATCH_OP], "Operations": []}
    assert_error(scim.patch(f"/Users/{uid}", json=empty), 400, "invalidValue")
    assert snapshot(scim) == before


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("id", "another-id"),
        ("meta.created", "2020-01-01T00:00:00Z"),
        ("meta.version", 'W/"99"'),
        ("groups", [{"value": "some-group"}]),
    ],
)
def test_patch_of_read_only_user_attribute_is_mutability(
    scim: httpx.Client, alice: dict[str, Any], path: str, value: Any
) -> None:
    before = snapshot(scim)
    for op in ("replace", "add"):
        body = patch_op({"op": op, "path": path, "value": value})
        assert_error(scim.patch(f"/Users/{alice['id']}", json=body), 400, "mutability", path)
    assert snapshot(scim) == before


@pytest.mark.parametrize("sub_attribute", ["value", "type"])
def test_patch_of_immutable_member_attribute_is_mutability(
    scim: httpx.Client, alice: dict[str, Any], sub_attribute: str
) -> None:
    group = create_group(scim, "Engineering", [{"value": alice["id"]}])
    before = snapshot(scim)
    path = f'members[value eq "{alice["id"]}"].{sub_attribute}'
    body = patch_op({"op": "replace", "path": path, "value": "Group"})
    assert_error(scim.patch(f"/Groups/{group['id']}", json=body), 400, "mutability", sub_attribute)
    assert snapshot(scim) == before


def test_patch_remove_without_path_is_no_target(scim: httpx.Client, alice: dict[str, Any]) -> None:
    """RFC 7644 §3.5.2.2: "If 'path' is unspecified, the operation fails ... noTarget"."""
    group = create_group(scim, "Engineering", [{"value": alice["id"]}])
    before = snapshot(scim)
    remove = patch_op({"op": "remove"})
    assert_error(scim.patch(f"/Users/{alice['id']}", json=remove), 400, "noTarget")
    assert_error(scim.patch(f"/Groups/{group['id']}", json=remove), 400, "noTarget")
    assert snapshot(scim) == before


def test_patch_replace_with_filter_matching_nothing_is_no_target(
    scim: httpx.Client, alice: dict[str, Any]
) -> None:
    """RFC 7644 §3.5.2.3: a valuePath filter with no match fails with noTarget.

    (The Entra tolerance creates the entry for a filter of ``eq`` comparisons only; this one
    cannot describe an entry.)
    """
    before = snapshot(scim)
    body = patch_op({"op": "replace", "path": 'emails[value co "nomatch"].type', "value": "home"})
    assert_error(scim.patch(f"/Users/{alice['id']}", json=body), 400, "noTarget", "emails")
    assert snapshot(scim) == before


def test_patch_remove_with_filter_matching_nothing_changes_nothing(
    scim: httpx.Client, alice: dict[str, Any]
) -> None:
    """RFC 7644 §3.5.2.2 requires noTarget only for a remove without path; a remove whose
    filter matches nothing is idempotent (IdPs re-send removals), and changes nothing."""
    group = create_group(scim, "Engineering", [{"value": alice["id"]}])
    before = snapshot(scim)
    missing = patch_op({"op": "remove", "path": f'members[value eq "{uuid.uuid4()}"]'})
    response = scim.patch(f"/Groups/{group['id']}", json=missing)
    assert response.status_code in (200, 204), response.text
    no_email = patch_op({"op": "remove", "path": 'emails[value eq "nobody@example.com"]'})
    response = scim.patch(f"/Users/{alice['id']}", json=no_email)
    assert response.status_code in (200, 204), response.text
    assert snapshot(scim) == before


# -- ETags -----------------------------------------------------------------------------------------


def test_etag_header_on_get_matches_meta_version(scim: httpx.Client, alice: dict[str, Any]) -> None:
    group = create_group(scim, "Engineering")
    for location in (f"/Users/{alice['id']}", f"/Groups/{group['id']}"):
        response = scim.get(location)
        assert response.status_code == 200
        etag = response.headers.get("ETag")
        assert etag, f"no ETag header on GET {location}"
        assert etag == response.json()["meta"]["version"]
    assert scim.get("/ServiceProviderConfig").json()["etag"]["supported"] is True


def test_stale_if_match_is_412_and_changes_nothing(
    scim: httpx.Client, alice: dict[str, Any]
) -> None:
    uid = alice["id"]
    stale = alice["meta"]["version"]
    changed = scim.patch(
        f"/Users/{uid}", json=patch_op({"op": "replace", "path": "displayName", "value": "Al"})
    )
    assert changed.status_code in (200, 204), changed.text
    assert changed.headers["ETag"] != stale
    before = snapshot(scim)
    for etag in (stale, 'W/"999"', '"not-a-version"'):
        headers = {"If-Match": etag}
        put = scim.put(
            f"/Users/{uid}", json={"schemas": [USER], "userName": "alice2"}, headers=headers
        )
        assert_error(put, 412)
        patch = patch_op({"op": "replace", "path": "displayName", "value": "Stale"})
        assert_error(scim.patch(f"/Users/{uid}", json=patch, headers=headers), 412)
        assert_error(scim.delete(f"/Users/{uid}", headers=headers), 412)
    assert snapshot(scim) == before


def test_stale_if_match_on_group_is_412(scim: httpx.Client, alice: dict[str, Any]) -> None:
    group = create_group(scim, "Engineering")
    stale = group["meta"]["version"]
    add = patch_op({"op": "add", "path": "members", "value": [{"value": alice["id"]}]})
    assert scim.patch(f"/Groups/{group['id']}", json=add).status_code in (200, 204)
    before = snapshot(scim)
    remove = patch_op({"op": "remove", "path": "members"})
    headers = {"If-Match": stale}
    assert_error(scim.patch(f"/Groups/{group['id']}", json=remove, headers=headers), 412)
    assert_error(scim.delete(f"/Groups/{group['id']}", headers=headers), 412)
    assert snapshot(scim) == before


def test_matching_if_match_succeeds(scim: httpx.Client, alice: dict[str, Any]) -> None:
    uid = alice["id"]
    etag = scim.get(f"/Users/{uid}").headers["ETag"]
    put = scim.put(
        f"/Users/{uid}",
        json={"schemas": [USER], "userName": "alice", "displayName": "Alice P."},
        headers={"If-Match": etag},
    )
    assert put.status_code == 200, put.text
    assert put.json()["displayName"] == "Alice P."
    assert put.headers["ETag"] != etag
    etag = put.headers["ETag"]
    patch = patch_op({"op": "replace", "path": "displayName", "value": "Alice Q."})
    patched = scim.patch(f"/Users/{uid}", json=patch, headers={"If-Match": etag})
    assert patched.status_code in (200, 204), patched.text
    assert scim.get(f"/Users/{uid}").json()["displayName"] == "Alice Q."
    any_version = patch_op({"op": "replace", "path": "displayName", "value": "Alice R."})
    assert scim.patch(f"/Users/{uid}", json=any_version, headers={"If-Match": "*"}).status_code in (
        200,
        204,
    )
    etag = scim.get(f"/Users/{uid}").headers["ETag"]
    deleted = scim.delete(f"/Users/{uid}", headers={"If-Match": etag})
    assert deleted.status_code == 204, deleted.text
    assert_error(scim.get(f"/Users/{uid}"), 404)


def test_if_none_match_with_current_etag_is_304(scim: httpx.Client, alice: dict[str, Any]) -> None:
    etag = scim.get(f"/Users/{alice['id']}").headers["ETag"]
    response = scim.get(f"/Users/{alice['id']}", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.headers["ETag"] == etag


# -- unknown resources -----------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["Users", "Groups"])
def test_unknown_id_is_404(scim: httpx.Client, alice: dict[str, Any], endpoint: str) -> None:
    before = snapshot(scim)
    missing = str(uuid.uuid4())
    location = f"/{endpoint}/{missing}"
    body = (
        {"schemas": [USER], "userName": "ghost"}
        if endpoint == "Users"
        else {"schemas": [GROUP], "displayName": "ghost"}
    )
    assert_error(scim.get(location), 404, None, missing)
    assert_error(scim.put(location, json=body), 404, None, missing)
    rename = patch_op({"op": "replace", "path": "displayName", "value": "ghost"})
    assert_error(scim.patch(location, json=rename), 404, None, missing)
    assert_error(scim.delete(location), 404, None, missing)
    assert snapshot(scim) == before


def test_unknown_endpoint_is_404(scim: httpx.Client) -> None:
    assert_error(scim.get("/Widgets"), 404)
    assert_error(scim.get("/ResourceTypes/Widget"), 404)
    assert_error(scim.get("/Schemas/urn:example:nothing"), 404)


# -- group members ---------------------------------------------------------------------------------


def test_group_member_that_does_not_exist_is_invalid_value(
    scim: httpx.Client, alice: dict[str, Any]
) -> None:
    group = create_group(scim, "Engineering", [{"value": alice["id"]}])
    before = snapshot(scim)
    ghost = str(uuid.uuid4())
    members = [{"value": alice["id"]}, {"value": ghost}]
    created = scim.post(
        "/Groups", json={"schemas": [GROUP], "displayName": "Ops", "members": members}
    )
    assert_error(created, 400, "invalidValue", ghost)
    replaced = scim.put(
        f"/Groups/{group['id']}",
        json={"schemas": [GROUP], "displayName": "Engineering", "members": members},
    )
    assert_error(replaced, 400, "invalidValue", ghost)
    added = patch_op({"op": "add", "path": "members", "value": [{"value": ghost}]})
    assert_error(scim.patch(f"/Groups/{group['id']}", json=added), 400, "invalidValue", ghost)
    typed = patch_op(
        {"op": "add", "path": "members", "value": [{"value": alice["id"], "type": "Group"}]}
    )
    assert_error(scim.patch(f"/Groups/{group['id']}", json=typed), 400, "invalidValue", alice["id"])
    assert snapshot(scim) == before
    assert member_ids(scim, group["id"]) == {alice["id"]}


def test_group_cannot_be_a_member_of_itself(scim: httpx.Client) -> None:
    group = create_group(scim, "Engineering")
    before = snapshot(scim)
    gid = group["id"]
    add_self = patch_op(
        {"op": "add", "path": "members", "value": [{"value": gid, "type": "Group"}]}
    )
    assert_error(scim.patch(f"/Groups/{gid}", json=add_self), 400, "invalidValue", "Engineering")
    replaced = scim.put(
        f"/Groups/{gid}",
        json={"schemas": [GROUP], "displayName": "Engineering", "members": [{"value": gid}]},
    )
    assert_error(replaced, 400, "invalidValue", "Engineering")
    assert snapshot(scim) == before


def test_two_group_cycle_is_refused_naming_it(scim: httpx.Client) -> None:
    a = create_group(scim, "A")
    b_id = create_group(scim, "B", [{"value": a["id"], "type": "Group"}])["id"]  # B contains A
    before = snapshot(scim)
    add_b = patch_op({"op": "add", "path": "members", "value": [{"value": b_id, "type": "Group"}]})
    error = assert_error(scim.patch(f"/Groups/{a['id']}", json=add_b), 400, "invalidValue")
    assert_names_cycle(error, "A", "B")
    replaced = scim.put(
        f"/Groups/{a['id']}",
        json={"schemas": [GROUP], "displayName": "A", "members": [{"value": b_id}]},
    )
    assert_names_cycle(assert_error(replaced, 400, "invalidValue"), "A", "B")
    assert snapshot(scim) == before
    assert member_ids(scim, a["id"]) == set()
    assert member_ids(scim, b_id) == {a["id"]}


def test_longer_cycle_is_refused_naming_it(scim: httpx.Client, alice: dict[str, Any]) -> None:
    a = create_group(scim, "A", [{"value": alice["id"]}])
    b = create_group(scim, "B", [{"value": a["id"], "type": "Group"}])  # B contains A
    c = create_group(scim, "C", [{"value": b["id"], "type": "Group"}])  # C contains B
    before = snapshot(scim)
    add_c = patch_op(
        {"op": "add", "path": "members", "value": [{"value": c["id"], "type": "Group"}]}
    )
    error = assert_error(scim.patch(f"/Groups/{a['id']}", json=add_c), 400, "invalidValue")
    assert_names_cycle(error, "A", "C", "B")
    assert snapshot(scim) == before
    assert member_ids(scim, a["id"]) == {alice["id"]}


# -- tolerated input -------------------------------------------------------------------------------


def test_request_without_content_type_is_read_as_json(
    scim: httpx.Client, alice: dict[str, Any]
) -> None:
    body = json.dumps({"schemas": [USER], "userName": "bob"}).encode()
    request = scim.build_request("POST", "/Users", content=body)
    assert "content-type" not in request.headers
    created = scim.send(request)
    assert created.status_code == 201, created.text
    assert created.json()["userName"] == "bob"

    patch = json.dumps(patch_op({"op": "replace", "path": "displayName", "value": "Al"})).encode()
    request = scim.build_request("PATCH", f"/Users/{alice['id']}", content=patch)
    assert "content-type" not in request.headers
    assert scim.send(request).status_code in (200, 204)
    assert scim.get(f"/Users/{alice['id']}").json()["displayName"] == "Al"

    # An empty Content-Type header is no Content-Type either.
    empty = scim.post(
        "/Users",
        content=json.dumps({"schemas": [USER], "userName": "carol"}).encode(),
        headers={"Content-Type": ""},
    )
    assert empty.status_code == 201, empty.text
    # application/json is JSON too.
    plain = scim.post(
        "/Users",
        content=json.dumps({"schemas": [USER], "userName": "dave"}).encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert plain.status_code == 201, plain.text


def test_body_that_is_not_json_by_content_type_is_415(scim: httpx.Client) -> None:
    before = snapshot(scim)
    response = scim.post(
        "/Users",
        content=json.dumps({"schemas": [USER], "userName": "bob"}).encode(),
        headers={"Content-Type": "text/plain"},
    )
    assert_error(response, 415)
    assert snapshot(scim) == before


def test_unknown_query_parameter_is_ignored(scim: httpx.Client, alice: dict[str, Any]) -> None:
    listed = scim.get("/Users", params={"frobnicate": "yes"})
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()["Resources"]] == [alice["id"]]
    fetched = scim.get(f"/Users/{alice['id']}", params={"frobnicate": "yes"})
    assert fetched.status_code == 200, fetched.text
    created = scim.post(
        "/Groups", params={"frobnicate": "yes"}, json={"schemas": [GROUP], "displayName": "Eng"}
    )
    assert created.status_code == 201, created.text
    assert scim.get("/ServiceProviderConfig", params={"x": "1"}).status_code == 200
