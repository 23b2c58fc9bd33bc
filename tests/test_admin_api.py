"""The admin inspection API at /admin/api, over real HTTP, on SQLite and PostgreSQL.

The organisation provisioned over SCIM (nesting sent as Group members):

    Engineering  (dave)          Platform  (erin)
    ├─ Java      (alice, bob, frank)   └─ Java
    └─ Python    (carol)

Java has two parents. Servers with a hierarchy file add edges and cascade from the file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from scim_bridge.config import HierarchySettings, Settings
from tests.server import LiveServer, create_token, run_server

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


# -- helpers ------------------------------------------------------------------------------


def admin_client(server: LiveServer, token: str | None = None) -> httpx.Client:
    if token is None:
        token = asyncio.run(create_token(server.settings.database_url, "operator", scope="admin"))
    return httpx.Client(
        base_url=f"{server.url}/admin/api",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def scim_client(server: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.scim_url,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )


def make_user(scim: httpx.Client, name: str, **attributes: Any) -> str:
    response = scim.post("/Users", json={"schemas": [USER], "userName": name, **attributes})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def make_group(
    scim: httpx.Client, name: str, members: Sequence[str] = (), **attributes: Any
) -> str:
    body: dict[str, Any] = {
        "schemas": [GROUP],
        "displayName": name,
        "members": [{"value": m} for m in members],
        **attributes,
    }
    response = scim.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def deactivate(scim: httpx.Client, user_id: str) -> None:
    response = scim.patch(
        f"/Users/{user_id}",
        json={"schemas": [PATCH], "Operations": [{"op": "replace", "value": {"active": False}}]},
    )
    assert response.status_code == 200, response.text


def provision(scim: httpx.Client) -> dict[str, str]:
    """The organisation of the module docstring; returns ids by name."""
    ids = {name: make_user(scim, name) for name in ("alice", "bob", "carol", "dave", "erin")}
    ids["frank"] = make_user(scim, "frank")
    ids["Java"] = make_group(
        scim, "Java", [ids["alice"], ids["bob"], ids["frank"]], externalId="obj-java"
    )
    ids["Python"] = make_group(scim, "Python", [ids["carol"]])
    ids["Engineering"] = make_group(scim, "Engineering", [ids["dave"], ids["Java"], ids["Python"]])
    ids["Platform"] = make_group(scim, "Platform", [ids["erin"], ids["Java"]])
    return ids


def by_name(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["displayName"]: node for node in tree["groups"]}


def edges(node: dict[str, Any]) -> dict[str, list[str]]:
    """A tree node's children: the sources of the edge to each child, by child id."""
    return {child["id"]: child["sources"] for child in node["children"]}


def reason_texts(entry: dict[str, Any]) -> list[str]:
    return [reason["text"] for reason in entry["reasons"]]


def write(path: Path, text: str) -> None:
    path.write_text(text.strip() + "\n")


@pytest.fixture
def admin(live_server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client for /admin/api of the live server, with an admin token."""
    with admin_client(live_server) as client:
        yield client


@pytest.fixture
def hierarchy_file(tmp_path: Path) -> Path:
    """Engineering cascades to its children; Java is its child by the file."""
    path = tmp_path / "hierarchy.yaml"
    write(
        path,
        """
version: 1
groups:
  - group: Engineering
    cascade: true
    children: [Java]
""",
    )
    return path


@pytest.fixture
def file_server(database_url: str, hierarchy_file: Path) -> Iterator[LiveServer]:
    """A live server whose tree also comes from ``hierarchy_file``."""
    settings = Settings(
        database_url=database_url, hierarchy=HierarchySettings(file=str(hierarchy_file))
    )
    token = asyncio.run(create_token(database_url, "tests"))
    with run_server(settings, token) as server:
        yield server


def reload(admin: httpx.Client) -> httpx.Response:
    return admin.post("/hierarchy/reload")


# -- health and tree ------------------------------------------------------------------------


def test_health_reports_the_database_the_tree_version_and_counts(
    scim: httpx.Client, admin: httpx.Client, backend: str
) -> None:
    ids = provision(scim)
    deactivate(scim, ids["frank"])
    response = admin.get("/health")
    assert response.status_code == 200, response.text
    health = response.json()
    assert health["status"] == "ok"
    assert health["database"] == {"reachable": True, "dialect": backend}
    assert health["tree"]["version"] == admin.get("/tree").json()["version"]
    assert health["counts"]["users"] == 6
    assert health["counts"]["activeUsers"] == 5
    assert health["counts"]["groups"] == 4
    assert health["counts"]["scimNestingEdges"] == 3


def test_tree_lists_every_group_with_parents_children_edge_sources_and_counts(
    scim: httpx.Client, admin: httpx.Client
) -> None:
    ids = provision(scim)
    tree = admin.get("/tree").json()
    groups = by_name(tree)
    assert tree["roots"] == [ids["Engineering"], ids["Platform"]]
    assert sorted(groups["Java"]["parents"]) == sorted([ids["Engineering"], ids["Platform"]])
    assert edges(groups["Engineering"]) == {ids["Java"]: ["scim"], ids["Python"]: ["scim"]}
    counts = {name: (g["directMembers"], g["effectiveMembers"]) for name, g in groups.items()}
    # frank is active here: Java has 3 direct and 3 effective members
    assert counts == {"Engineering": (1, 5), "Java": (3, 3), "Python": (1, 1), "Platform": (1, 4)}
    assert not any(g["cascade"] for g in groups.values())


def test_tree_shows_the_cascade_flag_and_file_edges_of_the_hierarchy_file(
    file_server: LiveServer,
) -> None:
    with scim_client(file_server) as scim, admin_client(file_server) as admin:
        dave, alice = make_user(scim, "dave"), make_user(scim, "alice")
        java = make_group(scim, "Java", [alice])
        make_group(scim, "Engineering", [dave])
        groups = by_name(admin.get("/tree").json())
    assert groups["Engineering"]["cascade"] is True
    assert groups["Engineering"]["children"] == [{"id": java, "sources": ["file"]}]
    # dave cascades down into Java; alice rolls up into Engineering
    assert (groups["Java"]["directMembers"], groups["Java"]["effectiveMembers"]) == (1, 2)
    assert groups["Engineering"]["effectiveMembers"] == 2


# -- groups -------------------------------------------------------------------------------


def test_group_lists_direct_members_and_effective_members_with_reasons(
    scim: httpx.Client, admin: httpx.Client
) -> None:
    ids = provision(scim)
    response = admin.get("/groups/Engineering")
    assert response.status_code == 200, response.text
    group = response.json()
    assert group["id"] == ids["Engineering"]
    assert group["parents"] == []
    direct = {(m["type"], m["display"]) for m in group["directMembers"]}
    assert direct == {("User", "dave"), ("Group", "Java"), ("Group", "Python")}
    effective = group["effectiveMembers"]
    assert effective["totalResults"] == 5
    assert {m["userName"]: reason_texts(m) for m in effective["Resources"]} == {
        "alice": ["via Java → Engineering"],
        "bob": ["via Java → Engineering"],
        "carol": ["via Python → Engineering"],
        "dave": ["direct"],
        "frank": ["via Java → Engineering"],
    }


def test_group_is_found_by_id_display_name_in_any_case_or_external_id(
    scim: httpx.Client, admin: httpx.Client
) -> None:
    ids = provision(scim)
    for ref in (ids["Java"], "jAVA", "obj-java"):
        response = admin.get(f"/groups/{ref}")
        assert response.status_code == 200, (ref, response.text)
        assert response.json()["id"] == ids["Java"], ref


def test_group_ref_may_contain_a_slash(scim: httpx.Client, admin: httpx.Client) -> None:
    java = make_group(scim, "Engineering/Java")
    response = admin.get("/groups/Engineering%2FJava")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == java


def test_group_effective_members_are_paged_by_start_index_and_count(
    scim: httpx.Client, admin: httpx.Client
) -> None:
    provision(scim)
    page = admin.get("/groups/Engineering", params={"startIndex": 2, "count": 2}).json()[
        "effectiveMembers"
    ]
    assert page["totalResults"] == 5
    assert page["startIndex"] == 2
    assert page["itemsPerPage"] == 2
    assert [m["userName"] for m in page["Resources"]] == ["bob", "carol"]


def test_group_page_count_is_capped_at_max_page_size(database_url: str) -> None:
    settings = Settings(database_url=database_url, max_page_size=2)
    token = asyncio.run(create_token(database_url, "tests"))
    with run_server(settings, token) as server, scim_client(server) as scim:
        provision(scim)
        with admin_client(server) as admin:
            page = admin.get("/groups/Engineering", params={"count": 1000}).json()
    assert page["effectiveMembers"]["itemsPerPage"] == 2
    assert page["effectiveMembers"]["totalResults"] == 5


@pytest.mark.parametrize(
    ("parameter", "value"),
    [("startIndex", "0"), ("startIndex", "first"), ("count", "-1"), ("count", "ten")],
)
def test_group_paging_parameters_that_are_not_usable_numbers_get_400_naming_the_parameter(
    scim: httpx.Client, admin: httpx.Client, parameter: str, value: str
) -> None:
    provision(scim)
    response = admin.get("/groups/Engineering", params={parameter: value})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == f"bad parameter {parameter}"
    assert parameter in body["detail"] and value in body["detail"]


# -- users --------------------------------------------------------------------------------


def test_user_lists_every_effective_group_with_the_paths_that_put_them_there(
    scim: httpx.Client, admin: httpx.Client
) -> None:
    ids = provision(scim)
    response = admin.get("/users/alice")
    assert response.status_code == 200, response.text
    user = response.json()
    assert (user["id"], user["userName"], user["active"]) == (ids["alice"], "alice", True)
    assert {g["displayName"]: reason_texts(g) for g in user["groups"]} == {
        "Engineering": ["via Java → Engineering"],
        "Java": ["direct"],
        "Platform": ["via Java → Platform"],
    }


def test_user_with_group_parameter_explains_only_that_group(
    scim: httpx.Client, admin: httpx.Client
) -> None:
    provision(scim)
    user = admin.get("/users/alice", params={"group": "Platform"}).json()
    assert [(g["displayName"], reason_texts(g)) for g in user["groups"]] == [
        ("Platform", ["via Java → Platform"])
    ]


def test_user_reasons_include_cascade_from_a_cascading_group(file_server: LiveServer) -> None:
    with scim_client(file_server) as scim, admin_client(file_server) as admin:
        dave = make_user(scim, "dave")
        make_group(scim, "Java")
        make_group(scim, "Engineering", [dave])
        user = admin.get("/users/dave").json()
    assert {g["displayName"]: reason_texts(g) for g in user["groups"]} == {
        "Engineering": ["direct"],
        "Java": ["cascade from Engineering"],
    }


def test_deactivated_user_has_no_effective_groups_and_says_so(
    scim: httpx.Client, admin: httpx.Client
) -> None:
    ids = provision(scim)
    deactivate(scim, ids["frank"])
    user = admin.get("/users/frank").json()
    assert user["active"] is False
    assert user["groups"] == []
    assert user["note"].startswith("deactivated: no effective memberships")
    assert "3 groups when re-activated" in user["note"]
    java = admin.get("/groups/Java").json()
    assert "frank" not in {m["userName"] for m in java["effectiveMembers"]["Resources"]}


# -- authentication -----------------------------------------------------------------------


def test_request_without_a_token_gets_401_json_saying_how_to_get_one(
    live_server: LiveServer,
) -> None:
    response = httpx.get(f"{live_server.url}/admin/api/tree")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    body = response.json()
    assert body["error"] == "admin token required"
    assert "scim-bridge token create --scope admin" in body["detail"]


def test_request_with_a_wrong_token_gets_401_json(live_server: LiveServer) -> None:
    with admin_client(live_server, token="sbt_not-a-real-token") as admin:
        response = admin.get("/tree")
    assert response.status_code == 401
    assert response.json()["error"] == "invalid admin token"


def test_scim_token_does_not_open_the_admin_api(live_server: LiveServer) -> None:
    with admin_client(live_server, token=live_server.token) as admin:
        response = admin.get("/health")
    assert response.status_code == 401
    assert "SCIM tokens do not work here" in response.json()["detail"]


def test_admin_token_does_not_open_the_scim_routes(
    live_server: LiveServer, admin: httpx.Client
) -> None:
    admin_token = admin.headers["Authorization"].removeprefix("Bearer ")
    response = httpx.get(
        f"{live_server.scim_url}/Users", headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert response.status_code == 401
    assert response.json()["status"] == "401"


# -- not found ----------------------------------------------------------------------------


def test_unknown_group_gets_404_naming_the_ref(admin: httpx.Client) -> None:
    response = admin.get("/groups/Mainframe")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "group not found: Mainframe"
    assert "'Mainframe'" in body["detail"]


def test_unknown_user_gets_404_naming_the_ref(admin: httpx.Client) -> None:
    response = admin.get("/users/zoe@example.com")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "user not found: zoe@example.com"
    assert "'zoe@example.com'" in body["detail"]


def test_unknown_group_to_explain_gets_404_naming_the_group(
    scim: httpx.Client, admin: httpx.Client
) -> None:
    provision(scim)
    response = admin.get("/users/alice", params={"group": "Mainframe"})
    assert response.status_code == 404
    assert response.json()["error"] == "group not found: Mainframe"


def test_unknown_admin_path_gets_404_json(admin: httpx.Client) -> None:
    response = admin.get("/nothing-here")
    assert response.status_code == 404
    assert "docs/admin.md" in response.json()["detail"]


# -- reload -------------------------------------------------------------------------------


def test_reload_applies_a_changed_hierarchy_file(
    file_server: LiveServer, hierarchy_file: Path
) -> None:
    with scim_client(file_server) as scim, admin_client(file_server) as admin:
        carol = make_user(scim, "carol")
        python = make_group(scim, "Python", [carol])
        make_group(scim, "Engineering")
        assert by_name(admin.get("/tree").json())["Python"]["parents"] == []
        write(hierarchy_file, "version: 1\ngroups:\n  - group: Engineering\n    children: [Python]")
        response = reload(admin)
        assert response.status_code == 200, response.text
        assert response.json()["applied"] is True
        assert response.json()["message"].startswith("hierarchy in force")
        tree = by_name(admin.get("/tree").json())
    assert tree["Engineering"]["children"] == [{"id": python, "sources": ["file"]}]
    assert tree["Engineering"]["cascade"] is False
    assert tree["Engineering"]["effectiveMembers"] == 1


def test_reload_of_a_file_that_closes_a_cycle_gets_409_and_keeps_the_previous_tree(
    file_server: LiveServer, hierarchy_file: Path
) -> None:
    with scim_client(file_server) as scim, admin_client(file_server) as admin:
        spring = make_group(scim, "Spring", [make_user(scim, "alice")])
        make_group(scim, "Java", [spring])
        make_group(scim, "Engineering")
        before = admin.get("/tree").json()
        write(
            hierarchy_file,
            """
version: 1
groups:
  - group: Engineering
    cascade: true
    children: [Java]
  - group: Spring
    children: [Engineering]
""",
        )
        response = reload(admin)
        after = admin.get("/tree").json()
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "hierarchy file rejected"
    assert "previous tree kept" in body["detail"]
    assert "cycle" in body["detail"] and "Spring" in body["detail"]
    assert after == before


def test_reload_of_an_invalid_file_gets_409_listing_its_problems(
    file_server: LiveServer, hierarchy_file: Path
) -> None:
    with admin_client(file_server) as admin:
        version = admin.get("/tree").json()["version"]
        write(hierarchy_file, "version: 1\ngroups:\n  - group: Java\n    children: [Java]")
        response = reload(admin)
        assert admin.get("/tree").json()["version"] == version
    assert response.status_code == 409
    assert "Java cannot be its own child" in response.json()["detail"]


def test_reload_after_a_rejected_file_applies_the_next_valid_change(
    file_server: LiveServer, hierarchy_file: Path
) -> None:
    with scim_client(file_server) as scim, admin_client(file_server) as admin:
        spring = make_group(scim, "Spring")
        java = make_group(scim, "Java", [spring])
        python = make_group(scim, "Python", [make_user(scim, "carol")])
        make_group(scim, "Engineering")
        write(hierarchy_file, "groups:\n  - group: Spring\n    children: [Java]")
        assert reload(admin).status_code == 409
        write(hierarchy_file, "groups:\n  - group: Engineering\n    children: [Java, Python]")
        response = reload(admin)
        tree = by_name(admin.get("/tree").json())
    assert response.status_code == 200, response.text
    assert edges(tree["Engineering"]) == {java: ["file"], python: ["file"]}
    assert tree["Engineering"]["effectiveMembers"] == 1
