"""End to end over HTTP: an organization provisioned the way Okta does it, and the tree from
config/hierarchy.example.yaml, on SQLite and PostgreSQL.

Okta has no nested groups. It creates the users, then (Push Groups) each group with no
members, then adds the members with PATCH; later it removes members and deactivates users.
The tree comes from the hierarchy file the server is started with:

    Organization
    ├── Engineering (cascade)
    │   ├── Java
    │   ├── Python
    │   └── Mainframe
    └── Template Admins
        ├── Java Template Admins
        ├── Python Template Admins
        └── Mainframe Template Admins

The expected effective memberships are read where an operator reads them: the admin API
(``/admin/api/users/{ref}``, ``/admin/api/groups/{ref}``, ``/admin/api/tree``), and SCIM
``User.groups``. Reloading the file goes through the admin API and through SIGHUP.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

from scim_bridge.config import HierarchySettings, Settings
from scim_bridge.hierarchy.spec import load_spec
from tests.hierarchy_driver import GROUP_SCHEMA, PATCH_OP, USER_SCHEMA, user_groups
from tests.server import create_token, free_port, run_server

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "hierarchy.example.yaml"

DEPARTMENTS = ["Java", "Python", "Mainframe"]
ADMIN_GROUPS = [f"{d} Template Admins" for d in DEPARTMENTS]
PUSHED_GROUPS = ["Organization", "Engineering", *DEPARTMENTS, "Template Admins", *ADMIN_GROUPS]

# who Okta assigns to which group (Push Groups), by the local part of the userName
ASSIGNMENTS = {
    "Organization": ["carl"],
    "Engineering": ["ada"],
    "Java": ["jim", "max"],
    "Python": ["pia", "tom"],
    "Mainframe": ["max", "dora"],
    "Java Template Admins": ["jane"],
}
USERS = ["ada", "jim", "pia", "max", "jane", "carl", "dora", "tom"]


def email(name: str) -> str:
    return f"{name}@example.com"


# -- the example hierarchy file ------------------------------------------------------------------


def test_example_hierarchy_file_is_valid_and_declares_the_customers_tree() -> None:
    spec = load_spec(EXAMPLE)
    edges = {(str(parent), str(child)) for parent, child in spec.edges()}
    assert edges == {
        ("Organization", "Engineering"),
        ("Organization", "Template Admins"),
        ("Engineering", "Java"),
        ("Engineering", "Python"),
        ("Engineering", "Mainframe"),
        ("Template Admins", "Java Template Admins"),
        ("Template Admins", "Python Template Admins"),
        ("Template Admins", "Mainframe Template Admins"),
    }
    assert [str(group) for group in spec.cascading()] == ["Engineering"]


# -- an organization provisioned by Okta ------------------------------------------------------


@dataclass
class Organization:
    scim: httpx.Client
    admin: httpx.Client
    hierarchy_file: Path
    users: dict[str, str]  # name -> SCIM id
    groups: dict[str, str]  # displayName -> SCIM id

    def user_view(self, name: str) -> dict[str, Any]:
        response = self.admin.get(f"/users/{quote(email(name), safe='')}")
        assert response.status_code == 200, response.text
        view: dict[str, Any] = response.json()
        return view

    def why(self, name: str) -> dict[str, list[str]]:
        """The groups a user is effectively in → the reasons, sorted (from the admin API)."""
        return {
            group["displayName"]: sorted(reason["text"] for reason in group["reasons"])
            for group in self.user_view(name)["groups"]
        }

    def effective(self, group: str) -> set[str]:
        response = self.admin.get(f"/groups/{quote(group, safe='')}", params={"count": 1000})
        assert response.status_code == 200, response.text
        page = response.json()["effectiveMembers"]
        assert page["totalResults"] == len(page["Resources"])
        return {member["userName"].split("@")[0] for member in page["Resources"]}

    def okta_patch(self, url: str, *operations: dict[str, Any]) -> None:
        body = {"schemas": [PATCH_OP], "Operations": list(operations)}
        response = self.scim.patch(url, json=body)
        assert response.status_code in (200, 204), response.text


def okta_create_user(scim: httpx.Client, name: str) -> str:
    """What Okta sends for a new assignment: look the user up, then create it."""
    lookup = scim.get("/Users", params={"filter": f'userName eq "{email(name)}"'})
    assert lookup.status_code == 200, lookup.text
    assert lookup.json()["totalResults"] == 0
    response = scim.post(
        "/Users",
        json={
            "schemas": [USER_SCHEMA],
            "userName": email(name),
            "name": {"givenName": name.title(), "familyName": "Example"},
            "emails": [{"primary": True, "value": email(name), "type": "work"}],
            "displayName": f"{name.title()} Example",
            "locale": "en-US",
            "externalId": f"00u{name}okta",
            "groups": [],
            "active": True,
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def okta_push_group(scim: httpx.Client, name: str) -> str:
    """Push Groups: the group is created empty; its members follow in PATCH requests."""
    body = {"schemas": [GROUP_SCHEMA], "displayName": name, "members": []}
    response = scim.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def provision_like_okta(scim: httpx.Client) -> tuple[dict[str, str], dict[str, str]]:
    """Users, then flat groups, then member adds; then a removal and a deactivation."""
    users = {name: okta_create_user(scim, name) for name in USERS}
    groups = {name: okta_push_group(scim, name) for name in PUSHED_GROUPS}
    for group, members in ASSIGNMENTS.items():
        value = [{"value": users[m], "display": email(m)} for m in members]
        body = {
            "schemas": [PATCH_OP],
            "Operations": [{"op": "add", "path": "members", "value": value}],
        }
        response = scim.patch(f"/Groups/{groups[group]}", json=body)
        assert response.status_code in (200, 204), response.text
    return users, groups


@pytest.fixture
def organization(settings: Settings, tmp_path: Path) -> Iterator[Organization]:
    hierarchy_file = tmp_path / "hierarchy.yaml"
    shutil.copy(EXAMPLE, hierarchy_file)
    configured = settings.model_copy(
        update={"hierarchy": HierarchySettings(file=str(hierarchy_file))}
    )
    scim_token = asyncio.run(create_token(configured.database_url, "okta"))
    admin_token = asyncio.run(create_token(configured.database_url, "ops", scope="admin"))
    with (
        run_server(configured, scim_token) as server,
        httpx.Client(
            base_url=server.scim_url,
            headers={"Authorization": f"Bearer {scim_token}"},
            timeout=30,
        ) as scim,
        httpx.Client(
            base_url=f"{server.url}/admin/api",
            headers={"Authorization": f"Bearer {admin_token}"},
            timeout=30,
        ) as admin,
    ):
        users, groups = provision_like_okta(scim)
        org = Organization(scim, admin, hierarchy_file, users, groups)
        org.okta_patch(  # Okta unassigns tom from Python ...
            f"/Groups/{groups['Python']}",
            {"op": "remove", "path": f'members[value eq "{users["tom"]}"]'},
        )
        org.okta_patch(  # ... and deactivates dora
            f"/Users/{users['dora']}", {"op": "replace", "value": {"active": False}}
        )
        yield org


EXPECTED = {
    "ada": {  # Engineering lead: direct in Engineering, which cascades
        "Engineering": ["direct"],
        "Organization": ["via Engineering → Organization"],
        "Java": ["cascade from Engineering"],
        "Python": ["cascade from Engineering"],
        "Mainframe": ["cascade from Engineering"],
    },
    "jim": {
        "Java": ["direct"],
        "Engineering": ["via Java → Engineering"],
        "Organization": ["via Java → Engineering → Organization"],
    },
    "pia": {
        "Python": ["direct"],
        "Engineering": ["via Python → Engineering"],
        "Organization": ["via Python → Engineering → Organization"],
    },
    "max": {  # in two departments: one membership of Engineering, two reasons
        "Java": ["direct"],
        "Mainframe": ["direct"],
        "Engineering": ["via Java → Engineering", "via Mainframe → Engineering"],
        "Organization": [
            "via Java → Engineering → Organization",
            "via Mainframe → Engineering → Organization",
        ],
    },
    "jane": {  # Java template admin
        "Java Template Admins": ["direct"],
        "Template Admins": ["via Java Template Admins → Template Admins"],
        "Organization": ["via Java Template Admins → Template Admins → Organization"],
    },
    "carl": {"Organization": ["direct"]},
    "dora": {},  # deactivated
    "tom": {},  # unassigned from Python
}


def test_every_user_is_effectively_in_the_expected_groups_for_the_expected_reasons(
    organization: Organization,
) -> None:
    assert {name: organization.why(name) for name in USERS} == EXPECTED


def test_every_group_has_the_expected_effective_members(organization: Organization) -> None:
    expected: dict[str, set[str]] = {group: set() for group in PUSHED_GROUPS}
    for user, groups in EXPECTED.items():
        for group in groups:
            expected[group].add(user)
    assert {group: organization.effective(group) for group in PUSHED_GROUPS} == expected
    assert expected["Mainframe"] == {"ada", "max"}  # dora is deactivated
    assert expected["Java Template Admins"] == {"jane"}  # no cascade into admin groups


def test_user_groups_over_scim_says_direct_and_indirect(organization: Organization) -> None:
    for name, groups in EXPECTED.items():
        if name == "dora":
            continue  # see test_inheritance_semantics: deactivated users' User.groups
        expected = {g: "direct" if "direct" in why else "indirect" for g, why in groups.items()}
        assert user_groups(organization.scim, organization.users[name]) == expected, name


def test_the_tree_comes_from_the_file_with_one_cascading_group(organization: Organization) -> None:
    response = organization.admin.get("/tree")
    assert response.status_code == 200, response.text
    groups = response.json()["groups"]
    names = {g["id"]: g["displayName"] for g in groups}
    edges = {
        (g["displayName"], names[child["id"]]): child["sources"]
        for g in groups
        for child in g["children"]
    }
    spec = load_spec(EXAMPLE)
    assert edges == {(str(p), str(c)): ["file"] for p, c in spec.edges()}
    assert [g["displayName"] for g in groups if g["cascade"]] == ["Engineering"]
    assert [names[root] for root in response.json()["roots"]] == ["Organization"]


def test_deactivated_user_keeps_its_stored_memberships_and_gets_them_back(
    organization: Organization,
) -> None:
    dora = organization.users["dora"]
    view = organization.user_view("dora")
    assert view["active"] is False
    assert view["groups"] == []
    response = organization.scim.get(f"/Groups/{organization.groups['Mainframe']}")
    assert dora in {m["value"] for m in response.json()["members"]}
    organization.okta_patch(f"/Users/{dora}", {"op": "replace", "value": {"active": True}})
    assert organization.why("dora") == {
        "Mainframe": ["direct"],
        "Engineering": ["via Mainframe → Engineering"],
        "Organization": ["via Mainframe → Engineering → Organization"],
    }


def test_a_group_okta_renames_leaves_the_files_tree_until_the_file_is_updated(
    organization: Organization,
) -> None:
    """The file names groups by displayName, and Okta sends no externalId for groups."""
    organization.okta_patch(
        f"/Groups/{organization.groups['Python']}",
        {"op": "replace", "value": {"id": organization.groups["Python"], "displayName": "Py"}},
    )
    assert organization.why("pia") == {"Py": ["direct"]}
    organization.hierarchy_file.write_text(
        EXAMPLE.read_text().replace("[Java, Python, Mainframe]", "[Java, Py, Mainframe]")
    )
    response = organization.admin.post("/hierarchy/reload")
    assert response.status_code == 200, response.text
    assert organization.why("pia")["Organization"] == ["via Py → Engineering → Organization"]


def test_reload_through_the_admin_api_puts_an_edited_file_in_force(
    organization: Organization,
) -> None:
    organization.hierarchy_file.write_text(
        EXAMPLE.read_text().replace("cascade: true", "cascade: false")
    )
    response = organization.admin.post("/hierarchy/reload")
    assert response.status_code == 200, response.text
    assert response.json()["applied"] is True
    assert organization.why("ada") == {
        "Engineering": ["direct"],
        "Organization": ["via Engineering → Organization"],
    }
    assert organization.effective("Python") == {"pia"}


def test_reload_of_a_file_with_a_cycle_is_refused_and_the_tree_stays(
    organization: Organization,
) -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    data["groups"].append({"group": "Java", "children": ["Organization"]})
    data["groups"][0]["children"].append("Contractors")  # a valid edit, refused with the rest
    organization.hierarchy_file.write_text(yaml.safe_dump(data))

    response = organization.admin.post("/hierarchy/reload")

    assert response.status_code == 409, response.text
    detail = response.json()["detail"]
    assert "rejected, previous tree kept" in detail
    assert "Engineering → Java → Organization → Engineering" in detail
    assert {name: organization.why(name) for name in USERS} == EXPECTED
    contractors = organization.scim.post(
        "/Groups", json={"schemas": [GROUP_SCHEMA], "displayName": "Contractors"}
    )
    assert contractors.status_code == 201, contractors.text
    tree = organization.admin.get("/tree").json()
    assert [g["parents"] for g in tree["groups"] if g["displayName"] == "Contractors"] == [[]]


# -- reload on SIGHUP, with the real command -------------------------------------------------


def _wait_until_up(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"scim-bridge serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("scim-bridge serve did not answer /healthz within 30 s")


def _eventually(check: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="SIGHUP is POSIX only")
def test_sighup_makes_a_running_server_reload_the_hierarchy_file(
    database_url: str, tmp_path: Path
) -> None:
    hierarchy_file = tmp_path / "hierarchy.yaml"
    shutil.copy(EXAMPLE, hierarchy_file)
    port = free_port()
    config = tmp_path / "scim-bridge.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "database_url": database_url,
                "host": "127.0.0.1",
                "port": port,
                "log_level": "warning",
                "hierarchy": {"file": str(hierarchy_file)},
            }
        )
    )
    token = asyncio.run(create_token(database_url, "okta"))
    url = f"http://127.0.0.1:{port}"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SCIM_BRIDGE_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from scim_bridge.cli import main; sys.exit(main())",
            "--config",
            str(config),
            "serve",
        ],
        env=environment,
    )
    try:
        _wait_until_up(url, process)
        with httpx.Client(
            base_url=f"{url}/scim/v2", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as scim:
            lead = okta_create_user(scim, "ada")
            okta_push_group(scim, "Java")
            engineering = okta_push_group(scim, "Engineering")
            body = {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "add", "path": "members", "value": [{"value": lead}]}],
            }
            assert scim.patch(f"/Groups/{engineering}", json=body).status_code in (200, 204)
            assert user_groups(scim, lead) == {"Engineering": "direct", "Java": "indirect"}

            hierarchy_file.write_text(
                EXAMPLE.read_text().replace("cascade: true", "cascade: false")
            )
            process.send_signal(signal.SIGHUP)

            reloaded = _eventually(lambda: user_groups(scim, lead) == {"Engineering": "direct"})
            assert reloaded, user_groups(scim, lead)
            assert process.poll() is None  # SIGHUP reloads; it does not stop the server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
