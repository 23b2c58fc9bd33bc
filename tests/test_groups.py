"""Groups: members that are users or groups, nesting, integrity and concurrency, over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.server import LiveServer

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def make_user(scim: httpx.Client, name: str, **attributes: Any) -> str:
    response = scim.post("/Users", json={"schemas": [USER], "userName": name, **attributes})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def make_group(scim: httpx.Client, name: str, members: list[dict[str, Any]] | None = None) -> str:
    body: dict[str, Any] = {"schemas": [GROUP], "displayName": name}
    if members is not None:
        body["members"] = members
    response = scim.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def add_members(scim: httpx.Client, group_id: str, *member_ids: str) -> httpx.Response:
    return scim.patch(
        f"/Groups/{group_id}",
        json={
            "schemas": [PATCH],
            "Operations": [
                {"op": "add", "path": "members", "value": [{"value": m} for m in member_ids]}
            ],
        },
    )


def user_groups(scim: httpx.Client, user_id: str) -> dict[str, str]:
    groups = scim.get(f"/Users/{user_id}").json().get("groups", [])
    return {g["display"]: g["type"] for g in groups}


def test_member_type_is_inferred_and_ref_filled_in(scim: httpx.Client) -> None:
    alice = make_user(scim, "alice")
    java = make_group(scim, "Java")
    engineering = make_group(scim, "Engineering", [{"value": alice}, {"value": java}])
    members = {m["value"]: m for m in scim.get(f"/Groups/{engineering}").json()["members"]}
    assert members[alice]["type"] == "User"
    assert members[java]["type"] == "Group"
    assert members[alice]["$ref"].endswith(f"/scim/v2/Users/{alice}")
    assert members[java]["$ref"].endswith(f"/scim/v2/Groups/{java}")
    assert members[java]["display"] == "Java"


def test_user_groups_lists_direct_and_indirect_groups(scim: httpx.Client) -> None:
    alice = make_user(scim, "alice")
    java = make_group(scim, "Java", [{"value": alice}])
    engineering = make_group(scim, "Engineering", [{"value": java, "type": "Group"}])
    make_group(scim, "Everyone-Dev", [{"value": engineering, "type": "Group"}])
    assert user_groups(scim, alice) == {
        "Java": "direct",
        "Engineering": "indirect",
        "Everyone-Dev": "indirect",
    }


def test_a_group_reached_directly_and_indirectly_is_listed_once_as_direct(
    scim: httpx.Client,
) -> None:
    alice = make_user(scim, "alice")
    java = make_group(scim, "Java", [{"value": alice}])
    make_group(scim, "Engineering", [{"value": java}, {"value": alice}])
    assert user_groups(scim, alice) == {"Java": "direct", "Engineering": "direct"}


def test_deleting_a_user_removes_it_from_every_group(scim: httpx.Client) -> None:
    alice = make_user(scim, "alice")
    bob = make_user(scim, "bob")
    java = make_group(scim, "Java", [{"value": alice}, {"value": bob}])
    python = make_group(scim, "Python", [{"value": alice}])
    before = scim.get(f"/Groups/{java}").headers["ETag"]
    assert scim.delete(f"/Users/{alice}").status_code == 204
    assert [m["value"] for m in scim.get(f"/Groups/{java}").json()["members"]] == [bob]
    assert "members" not in scim.get(f"/Groups/{python}").json()
    assert scim.get(f"/Groups/{java}").headers["ETag"] != before


def test_deleting_a_group_removes_it_from_its_parents(scim: httpx.Client) -> None:
    java = make_group(scim, "Java")
    engineering = make_group(scim, "Engineering", [{"value": java}])
    assert scim.delete(f"/Groups/{java}").status_code == 204
    assert "members" not in scim.get(f"/Groups/{engineering}").json()


def test_deactivated_user_keeps_its_memberships(scim: httpx.Client) -> None:
    alice = make_user(scim, "alice")
    java = make_group(scim, "Java", [{"value": alice}])
    response = scim.patch(
        f"/Users/{alice}",
        json={
            "schemas": [PATCH],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["active"] is False, response.text
    assert [m["value"] for m in scim.get(f"/Groups/{java}").json()["members"]] == [alice]


def test_unknown_member_is_refused_and_changes_nothing(scim: httpx.Client) -> None:
    alice = make_user(scim, "alice")
    java = make_group(scim, "Java", [{"value": alice}])
    response = add_members(scim, java, "no-such-id")
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidValue"
    assert "no-such-id" in response.json()["detail"]
    assert [m["value"] for m in scim.get(f"/Groups/{java}").json()["members"]] == [alice]


def test_cycle_is_refused_naming_it_and_changes_nothing(scim: httpx.Client) -> None:
    python = make_group(scim, "Python")
    java = make_group(scim, "Java", [{"value": python}])
    engineering = make_group(scim, "Engineering", [{"value": java}])
    response = add_members(scim, python, engineering)
    assert response.status_code == 400
    error = response.json()
    assert error["scimType"] == "invalidValue"
    assert "Python → Engineering → Java → Python" in error["detail"]
    assert "members" not in scim.get(f"/Groups/{python}").json()


def test_group_cannot_be_its_own_member(scim: httpx.Client) -> None:
    java = make_group(scim, "Java")
    response = add_members(scim, java, java)
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidValue"


def test_filter_on_members_finds_groups_of_a_user(scim: httpx.Client) -> None:
    alice = make_user(scim, "alice")
    java = make_group(scim, "Java", [{"value": alice}])
    make_group(scim, "Python")
    found = scim.get(
        "/Groups",
        params={
            "filter": f'id eq "{java}" and members eq "{alice}"',
            "excludedAttributes": "members",
        },
    ).json()
    assert found["totalResults"] == 1
    assert "members" not in found["Resources"][0]


async def _concurrent_adds(server: LiveServer, group_id: str, user_ids: list[str]) -> list[int]:
    async with httpx.AsyncClient(
        base_url=server.scim_url, headers={"Authorization": f"Bearer {server.token}"}, timeout=60
    ) as client:
        responses = await asyncio.gather(
            *(
                client.patch(
                    f"/Groups/{group_id}",
                    json={
                        "schemas": [PATCH],
                        "Operations": [{"op": "add", "path": "members", "value": [{"value": uid}]}],
                    },
                )
                for uid in user_ids
            )
        )
    return [r.status_code for r in responses]


def test_twenty_concurrent_member_adds_lose_no_member(
    scim: httpx.Client, live_server: LiveServer
) -> None:
    users = [make_user(scim, f"user{i}") for i in range(20)]
    group = make_group(scim, "Parallel")
    statuses = asyncio.run(_concurrent_adds(live_server, group, users))
    assert statuses == [200] * 20, statuses
    members = {m["value"] for m in scim.get(f"/Groups/{group}").json()["members"]}
    assert members == set(users)


def test_filter_on_user_groups_sees_inherited_groups(scim: httpx.Client) -> None:
    alice = make_user(scim, "alice")
    make_user(scim, "bob")
    java = make_group(scim, "Java", [{"value": alice}])
    engineering = make_group(scim, "Engineering", [{"value": java}])
    for group_filter in (
        f'groups.value eq "{engineering}"',
        f'groups[value eq "{engineering}" and type eq "indirect"]',
        'groups.display eq "engineering"',
    ):
        found = scim.get("/Users", params={"filter": group_filter}).json()
        assert [u["id"] for u in found["Resources"]] == [alice], group_filter


def test_re_adding_an_existing_member_keeps_the_version(scim: httpx.Client) -> None:
    alice = make_user(scim, "alice")
    java = make_group(scim, "Java", [{"value": alice}])
    before = scim.get(f"/Groups/{java}").headers["ETag"]
    response = add_members(scim, java, alice)
    assert response.status_code == 200
    assert response.headers["ETag"] == before
    assert [m["value"] for m in response.json()["members"]] == [alice]


def test_member_given_only_by_ref_is_resolved(scim: httpx.Client) -> None:
    java = make_group(scim, "Java")
    engineering = make_group(scim, "Engineering", [{"$ref": f"{scim.base_url}/Groups/{java}"}])
    members = scim.get(f"/Groups/{engineering}").json()["members"]
    assert [(m["value"], m["type"]) for m in members] == [(java, "Group")]


def test_member_whose_ref_contradicts_its_value_is_refused(scim: httpx.Client) -> None:
    alice = make_user(scim, "alice")
    java = make_group(scim, "Java")
    response = scim.post(
        "/Groups",
        json={
            "schemas": [GROUP],
            "displayName": "Engineering",
            "members": [{"value": alice, "$ref": f"{scim.base_url}/Groups/{java}"}],
        },
    )
    assert response.status_code == 400
    assert response.json()["scimType"] == "invalidValue"
