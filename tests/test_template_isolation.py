"""Department template isolation end to end: the customer's structure provisioned over SCIM,
the bridge and the Coder double over real HTTP on 127.0.0.1, the bridge's worker syncing.

Engineering → Java, Python, Mainframe; each department has its template admin group (a child
of the department, from the hierarchy file) and its templates. Java and Python are isolated;
Mainframe is not, and lets its ancestors use its templates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from scim_bridge.cli import main
from scim_bridge.coderdouble import CoderState
from scim_bridge.config import HierarchySettings, Settings
from tests.coder_fixtures import (
    LiveCoder,
    admin_client,
    assert_equal,
    coder_settings,
    eventually,
    full_sync,
)
from tests.server import LiveServer, create_token, run_server
from tests.test_sync_api_mode import GROUP, PATCH, USER, scim_client

HIERARCHY = """\
version: 1
groups:
  - group: Engineering
    children: [Java, Python, Mainframe]
  - group: Java
    children: [java-template-admins]
  - group: Python
    children: [python-template-admins]
  - group: Mainframe
    children: [mainframe-template-admins]
"""

DEPARTMENTS: list[dict[str, Any]] = [
    {
        "name": "java",
        "group": "Java",
        "templates": ["java-*"],
        "admin_group": "java-template-admins",
        "isolated": True,
    },
    {
        "name": "python",
        "group": "Python",
        "templates": ["python-*"],
        "admin_group": "python-template-admins",
        "isolated": True,
    },
    {
        "name": "mainframe",
        "group": "Mainframe",
        "templates": ["mainframe-cobol"],
        "admin_group": "mainframe-template-admins",
        "ancestors_use": True,
    },
]

# Direct SCIM members (Okta style: flat groups, users only).
MEMBERS = {
    "Engineering": [],
    "Java": ["bob"],
    "Python": [],
    "Mainframe": ["dave"],
    "java-template-admins": ["alice"],
    "python-template-admins": ["carol"],
    "mainframe-template-admins": [],
}

TEMPLATES = ["java-spring", "java-quarkus", "python-django", "mainframe-cobol", "shared-base"]
JAVA = {"java-template-admins": "admin", "java": "use"}
EXPECTED_ACLS = {
    "java-spring": JAVA,
    "java-quarkus": JAVA,
    "python-django": {"python-template-admins": "admin", "python": "use"},
    "mainframe-cobol": {
        "Everyone": "use",
        "mainframe-template-admins": "admin",
        "mainframe": "use",
        "engineering": "use",
    },
    "shared-base": {"Everyone": "use"},  # no department owns it: never touched
}
SYNCED_GROUPS = {name.lower() for name in MEMBERS}
ENTRA_OBJECT_IDS = {
    name: f"0000000{n}-e1a0-4c1d-9b2a-00000000000{n}" for n, name in enumerate(MEMBERS)
}


def by_external_id(department: dict[str, Any]) -> dict[str, Any]:
    """The department as an Entra customer writes it: groups by object id (externalId)."""
    named = {
        k: {"externalId": ENTRA_OBJECT_IDS[v]} for k, v in department.items() if k.endswith("group")
    }
    return {**department, **named}


BridgeFactory = Callable[..., LiveServer]


@pytest.fixture
def templates(coder: LiveCoder) -> None:
    """The customer's templates, as Coder creates them: Everyone may use each."""
    for name in TEMPLATES:
        coder.state.create_template(coder.state.default_org, name)


@pytest.fixture
def start_bridge(
    database_url: str, coder: LiveCoder, tmp_path: Path, templates: None
) -> Iterator[BridgeFactory]:
    """Start the bridge with the departments (overrides: coder settings), provision the
    customer's groups, and wait until Coder has every group."""
    hierarchy = tmp_path / "hierarchy.yaml"
    hierarchy.write_text(HIERARCHY)
    running: list[Any] = []

    def start(
        departments: list[dict[str, Any]] = DEPARTMENTS, style: str = "okta", **overrides: Any
    ) -> LiveServer:
        isolation = {"departments": departments, **overrides.pop("template_isolation", {})}
        settings = Settings(
            database_url=database_url,
            hierarchy=HierarchySettings(file=str(hierarchy)),
            coder=coder_settings(coder, template_isolation=isolation, **overrides),
        )
        token = asyncio.run(create_token(database_url, "tests"))
        admin = asyncio.run(create_token(database_url, "ops", "admin"))
        context = run_server(settings, token)
        server = replace(context.__enter__(), admin_token=admin)
        running.append(context)
        provision(server, style)
        eventually(
            lambda: assert_equal(set(coder.state.groups_named()) - {"Everyone"}, SYNCED_GROUPS)
        )
        return server

    yield start
    for context in reversed(running):
        context.__exit__(None, None, None)


def provision(server: LiveServer, style: str = "okta") -> None:
    """Okta style: each group posted with its members. Entra style: each group posted empty
    with its object id as externalId, then its members added by a PATCH (`"op": "Add"`)."""
    ids: dict[str, str] = {}
    with scim_client(server) as scim:
        for name in ("alice", "bob", "carol", "dave"):
            body = {
                "schemas": [USER],
                "userName": name,
                "emails": [{"value": f"{name}@example.com"}],
            }
            ids[name] = scim.post("/Users", json=body).json()["id"]
        for group, members in MEMBERS.items():
            values = [{"value": ids[m]} for m in members]
            body: dict[str, Any] = {"schemas": [GROUP], "displayName": group}
            if style == "okta":
                body["members"] = values
            else:
                body["externalId"] = ENTRA_OBJECT_IDS[group]
            created = scim.post("/Groups", json=body)
            assert created.status_code == 201
            if style == "entra" and values:
                operation = {"op": "Add", "path": "members", "value": values}
                patch = {"schemas": [PATCH], "Operations": [operation]}
                response = scim.patch(f"/Groups/{created.json()['id']}", json=patch)
                assert response.status_code in (200, 204)


def acl_of(state: CoderState, template_name: str) -> dict[str, str]:
    """A template's group ACL by group name (Everyone by its name), read from the double."""
    template = next(t for t in state.templates.values() if t.name == template_name)
    names = {str(g.id): g.name for g in state.groups.values()}
    acl = {names[group_id]: role for group_id, role in template.group_acl.items()}
    acl.update({f"user:{state.user(u).username}": r for u, r in template.user_acl.items()})
    return acl


def acls(state: CoderState) -> dict[str, dict[str, str]]:
    return {name: acl_of(state, name) for name in TEMPLATES}


def grant(coder: LiveCoder, template_name: str, token: str | None = None, **perms: Any) -> int:
    """PATCH a template's ACL over HTTP, as an administrator in Coder's UI would (owner by
    default); ``group_perms`` and ``user_perms`` take names, turned into ids here."""
    state = coder.state
    template = next(t for t in state.templates.values() if t.name == template_name)
    groups = state.groups_named()
    body = {
        "group_perms": {str(groups[n].id): r for n, r in perms.get("group_perms", {}).items()},
        "user_perms": {str(state.user(n).id): r for n, r in perms.get("user_perms", {}).items()},
    }
    with coder.client(token) as client:
        return client.patch(f"/api/v2/templates/{template.id}/acl", json=body).status_code


def last_run(bridge: LiveServer, kind: str) -> dict[str, Any]:
    with admin_client(bridge) as admin:
        return dict(admin.get("/sync").json()["last_runs"].get(kind, {}))


# -- the customer's structure ------------------------------------------------------------------


@pytest.mark.parametrize("style", ["okta", "entra"])
def test_each_department_admin_group_is_admin_on_its_own_templates_only(
    start_bridge: BridgeFactory, coder: LiveCoder, style: str
) -> None:
    departments = DEPARTMENTS if style == "okta" else [by_external_id(d) for d in DEPARTMENTS]
    start_bridge(departments, style)
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))


def test_isolation_holds_in_mapping_mode_too(start_bridge: BridgeFactory, coder: LiveCoder) -> None:
    """Mapping mode creates the Coder groups and leaves members to logins; ACLs are the same."""
    start_bridge(mode="mapping")
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))


def test_everyone_is_removed_only_where_isolation_is_asked_for(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    start_bridge()
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    everyone = {name for name, acl in acls(coder.state).items() if "Everyone" in acl}
    assert everyone == {"mainframe-cobol", "shared-base"}


def test_hand_made_cross_department_grant_is_removed_at_the_next_resync(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    bridge = start_bridge()
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    assert grant(coder, "java-spring", group_perms={"python-template-admins": "admin"}) == 200
    report = full_sync(bridge)
    assert acls(coder.state) == EXPECTED_ACLS
    assert (
        "template java-spring (department java): group python-template-admins admin → removed "
        "(department python's admin group, no grant of java)"
    ) in report["template_corrections"]


def test_department_admin_edits_of_its_own_acl_are_reverted_and_reported(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    bridge = start_bridge()
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    java_admin = coder.state.create_token(coder.state.user("alice"), "alice")
    changed = {"python-template-admins": "use", "Everyone": "use", "java": ""}
    assert grant(coder, "java-spring", java_admin, group_perms=changed) == 200
    corrections = full_sync(bridge)["template_corrections"]
    assert acls(coder.state) == EXPECTED_ACLS
    prefix = "template java-spring (department java): group"
    assert f"{prefix} java none → use (user group)" in corrections
    assert f"{prefix} Everyone use → removed (the department is isolated)" in corrections


def test_department_admin_cannot_touch_another_departments_template(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    start_bridge()
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    java_admin = coder.state.create_token(coder.state.user("alice"), "alice")
    refused = grant(coder, "python-django", java_admin, group_perms={"java": "use"})
    assert refused in (403, 404)
    assert acls(coder.state) == EXPECTED_ACLS


def test_unmanaged_entries_are_kept_and_reported_as_drift_without_strict(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    bridge = start_bridge()
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    coder.state.create_group(coder.state.default_org, "auditors")
    assert grant(coder, "java-spring", group_perms={"auditors": "use"}, user_perms={"dave": "use"})
    report = full_sync(bridge)
    assert acl_of(coder.state, "java-spring") == {**JAVA, "auditors": "use", "user:dave": "use"}
    prefix = "template java-spring (department java):"
    assert report["template_drift"] == [
        f"{prefix} group auditors has use (not managed by the bridge; kept, strict is off)",
        f"{prefix} user dave has use (not managed by the bridge; kept, strict is off)",
    ]
    assert report["template_corrections"] == []


def test_strict_removes_entries_the_bridge_does_not_manage(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    bridge = start_bridge(template_isolation={"strict": True})
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    coder.state.create_group(coder.state.default_org, "auditors")
    assert grant(coder, "java-spring", group_perms={"auditors": "use"}, user_perms={"dave": "use"})
    report = full_sync(bridge)
    assert acls(coder.state) == EXPECTED_ACLS
    assert len(report["template_corrections"]) == 2
    assert report["template_drift"] == []


# -- configuration errors: nothing applied -----------------------------------------------------


def test_template_claimed_by_two_departments_is_refused_and_nothing_applied(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    spring = {
        "name": "spring",
        "group": "Engineering",
        "templates": ["*-spring"],
        "admin_group": "java-template-admins",
    }
    bridge = start_bridge([*DEPARTMENTS, spring])
    report = full_sync(bridge)
    [error] = report["template_errors"]
    assert "template java-spring matches departments java (java-*) and spring (*-spring)" in error
    assert "nothing applied" in error
    assert all(acl == {"Everyone": "use"} for acl in acls(coder.state).values())


def test_department_naming_a_group_that_is_not_provisioned_is_refused(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    typo = {**DEPARTMENTS[1], "admin_group": "pyhton-template-admins"}
    bridge = start_bridge([DEPARTMENTS[0], typo])
    [error] = full_sync(bridge)["template_errors"]
    assert "department python names admin_group 'pyhton-template-admins'" in error
    assert "coder.template_isolation.departments[1].admin_group" in error
    assert all(acl == {"Everyone": "use"} for acl in acls(coder.state).values())


def test_admin_api_names_the_misconfiguration_instead_of_an_acl_state(
    start_bridge: BridgeFactory,
) -> None:
    typo = {**DEPARTMENTS[1], "group": "Pyhton"}
    bridge = start_bridge([DEPARTMENTS[0], typo])
    with admin_client(bridge) as admin:
        response = admin.get("/templates")
    assert response.status_code == 409
    assert "department python names group 'Pyhton'" in response.json()["detail"]


# -- when checks happen ----------------------------------------------------------------------------


def test_new_template_is_isolated_by_the_periodic_check_without_a_resync(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    bridge = start_bridge(template_acl_interval_seconds=1)
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    coder.state.create_template(coder.state.default_org, "java-micronaut")
    eventually(lambda: assert_equal(acl_of(coder.state, "java-micronaut"), JAVA))
    assert last_run(bridge, "templates")["template_corrections"]


def test_incremental_sync_reads_no_acl_when_nothing_they_depend_on_changed(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    bridge = start_bridge()
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    acl_reads = coder.state.calls.count("GET", "/api/v2/templates/{template}/acl")
    with scim_client(bridge) as scim:
        java = scim.get("/Groups", params={"filter": 'displayName eq "Java"'}).json()
        carol = scim.get("/Users", params={"filter": 'userName eq "carol"'}).json()
        operation = {
            "op": "add",
            "path": "members",
            "value": [{"value": carol["Resources"][0]["id"]}],
        }
        body = {"schemas": [PATCH], "Operations": [operation]}
        assert scim.patch(f"/Groups/{java['Resources'][0]['id']}", json=body).status_code == 200

    def synced() -> None:
        assert "  + java: add carol" in last_run(bridge, "incremental").get("changes", [])

    eventually(synced)
    assert coder.state.calls.count("GET", "/api/v2/templates/{template}/acl") == acl_reads


def test_template_deleted_during_a_check_is_skipped_not_an_error(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    bridge = start_bridge()
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    acl_reads = coder.state.calls.count("GET", "/api/v2/templates/{template}/acl")
    coder.state.faults.configure(latency=0.5)  # every answer waits: time to delete one
    with admin_client(bridge) as admin:
        assert admin.post("/sync").status_code == 202

    def reading() -> None:
        assert coder.state.calls.count("GET", "/api/v2/templates/{template}/acl") > acl_reads

    eventually(reading)
    python = next(t for t in coder.state.templates.values() if t.name == "python-django")
    coder.state.delete_template(python)
    coder.state.faults.clear()

    def finished() -> dict[str, Any]:
        run = last_run(bridge, "full")
        assert run.get("templates_checked") == 3
        return run

    report = eventually(finished)
    assert report["template_errors"] == []


# -- inspecting -----------------------------------------------------------------------------------


def test_admin_api_lists_each_departments_templates_and_their_acl_state(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    bridge = start_bridge()
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    assert grant(coder, "python-django", group_perms={"java-template-admins": "use"}) == 200
    with admin_client(bridge) as admin:
        body = admin.get("/templates").json()
    departments = {d["name"]: d for d in body["departments"]}
    assert [t["template"] for t in departments["java"]["templates"]] == [
        "java-quarkus",
        "java-spring",
    ]
    assert all(t["in_sync"] for t in departments["java"]["templates"])
    [django] = departments["python"]["templates"]
    assert not django["in_sync"]
    stray = next(e for e in django["acl"] if e["name"] == "java-template-admins")
    assert (stray["role"], stray["becomes"]) == ("use", None)
    assert body["unowned_templates"] == ["shared-base"]
    assert body["pending_corrections"] == [
        "template python-django (department python): group java-template-admins use → removed "
        "(department java's admin group, no grant of python)"
    ]


def test_admin_api_says_isolation_is_off_without_departments(
    start_bridge: BridgeFactory,
) -> None:
    bridge = start_bridge([])
    with admin_client(bridge) as admin:
        response = admin.get("/templates")
    assert response.status_code == 409
    assert "coder.template_isolation.departments" in response.json()["detail"]


def test_corrections_are_counted_in_the_metrics(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    bridge = start_bridge()
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    text = httpx.get(f"{bridge.url}/metrics", timeout=30).text
    counted = next(
        line
        for line in text.splitlines()
        if line.startswith("scim_bridge_template_acl_corrections_total ")
    )
    # Java's two templates and Python's one lose Everyone; mainframe gains engineering; each
    # of the four owned templates gains its admin group and its user group.
    assert float(counted.split()[1]) == 3 + 1 + 4 * 2
    assert "scim_bridge_template_isolation_errors 0.0" in text


def test_plan_shows_acl_changes_beside_membership_changes_and_applies_nothing(
    start_bridge: BridgeFactory,
    coder: LiveCoder,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bridge = start_bridge(resync_interval_seconds=0)
    eventually(lambda: assert_equal(acls(coder.state), EXPECTED_ACLS))
    assert grant(coder, "java-spring", group_perms={"python": "admin"}) == 200
    java = coder.state.groups_named()["java"]
    coder.state.add_group_members(java, [coder.state.user("carol")])
    config = tmp_path / "cli.yaml"
    config.write_text(
        "coder:\n  template_isolation:\n    departments:\n"
        + "".join(f"      - {_flow(d)}\n" for d in DEPARTMENTS)
    )
    monkeypatch.setenv("SCIM_BRIDGE_CONFIG", str(config))
    monkeypatch.setenv("SCIM_BRIDGE_DATABASE_URL", bridge.settings.database_url)
    monkeypatch.setenv("SCIM_BRIDGE_HIERARCHY__FILE", str(bridge.settings.hierarchy.file))
    monkeypatch.setenv("SCIM_BRIDGE_CODER__URL", coder.url)
    monkeypatch.setenv("SCIM_BRIDGE_CODER__TOKEN", coder.token)
    monkeypatch.setenv("SCIM_BRIDGE_CODER__RATE_LIMIT_PER_MINUTE", "0")
    capsys.readouterr()
    assert main(["plan"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert "  - java: remove carol" in printed
    assert (
        "~ template java-spring (department java): group python admin → removed "
        "(department python's user group, no grant of java)"
    ) in printed
    assert acl_of(coder.state, "java-spring") == {**JAVA, "python": "admin"}


def _flow(department: dict[str, Any]) -> str:
    """A department as one line of YAML flow style."""
    import json

    return json.dumps(department)


def test_coder_token_without_template_rights_is_told_what_role_it_needs(
    start_bridge: BridgeFactory, coder: LiveCoder
) -> None:
    coder.state.user("bridge").roles = ["user-admin"]
    bridge = start_bridge()
    report = full_sync(bridge)
    assert any("template-admin role" in w for w in report["warnings"] + report["template_errors"])
    assert all(acl == {"Everyone": "use"} for acl in acls(coder.state).values())
