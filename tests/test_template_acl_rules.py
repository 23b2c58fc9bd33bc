"""Department template isolation, as rules (contract §7, ``scim_bridge/coder/acl.py``).

Pure: every test builds a tree, the bridge's links, Coder's templates and ACLs by hand and
asks what the bridge would do with them; no database, no HTTP.

The customer's structure: Engineering → Java, Python, Mainframe (Java → java-developers),
each department with its ``<dept>-template-admins`` group beside the tree; platform-team is
granted roles, auditors exists in the tree but not yet in Coder.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from scim_bridge.coder.acl import (
    Department,
    Grant,
    TemplateAclChange,
    TemplateAclPlan,
    TemplateIsolationError,
    assign_templates,
    plan_template_acl,
    resolve_departments,
)
from scim_bridge.coder.client import Template, TemplateAcl
from scim_bridge.coder.plan import Link
from scim_bridge.config import (
    ConfigError,
    DepartmentGrant,
    DepartmentSettings,
    TemplateIsolationSettings,
    load_settings,
)
from scim_bridge.hierarchy.engine import GroupInfo, Tree, TreeInputs

ORG = "0f6a7c3e-0000-4000-8000-000000000001"  # also the id of its Everyone group (§3.4)

# SCIM id -> (displayName, externalId)
GROUPS = {
    "scim-eng": ("Engineering", "ext-eng"),
    "scim-java": ("Java", "ext-java"),
    "scim-python": ("Python", "ext-python"),
    "scim-mainframe": ("Mainframe", "ext-mainframe"),
    "scim-java-devs": ("java-developers", "ext-java-devs"),
    "scim-java-admins": ("java-template-admins", "ext-java-admins"),
    "scim-python-admins": ("python-template-admins", "ext-python-admins"),
    "scim-mainframe-admins": ("mainframe-template-admins", "ext-mainframe-admins"),
    "scim-platform": ("platform-team", "ext-platform"),
    "scim-auditors": ("auditors", "ext-auditors"),
}
EDGES = frozenset(
    {
        ("scim-eng", "scim-java"),
        ("scim-eng", "scim-python"),
        ("scim-eng", "scim-mainframe"),
        ("scim-java", "scim-java-devs"),
    }
)
NOT_IN_CODER = {"scim-auditors"}


def coder_id(scim_id: str) -> str:
    return "coder-" + scim_id.removeprefix("scim-")


def coder_name(scim_id: str) -> str:
    return GROUPS[scim_id][0].lower()


def make_tree() -> Tree:
    inputs = TreeInputs(
        groups={gid: GroupInfo(gid, name, ext) for gid, (name, ext) in GROUPS.items()},
        scim_edges=EDGES,
    )
    return Tree("v1", inputs, inputs.build())


def make_links(*, without: tuple[str, ...] = ()) -> dict[str, Link]:
    return {
        gid: Link(gid, coder_id(gid), coder_name(gid))
        for gid in GROUPS
        if gid not in NOT_IN_CODER and gid not in without
    }


JAVA: dict[str, Any] = {
    "name": "java",
    "group": "Java",
    "admin_group": "java-template-admins",
    "templates": ["java-*"],
}
PYTHON: dict[str, Any] = {
    "name": "python",
    "group": "Python",
    "admin_group": "python-template-admins",
    "templates": ["python-*"],
}
MAINFRAME: dict[str, Any] = {
    "name": "mainframe",
    "group": "Mainframe",
    "admin_group": "mainframe-template-admins",
    "templates": ["mainframe-*", "cobol-*"],
}


def isolation(*departments: dict[str, Any], strict: bool = False) -> TemplateIsolationSettings:
    return TemplateIsolationSettings.model_validate(
        {"strict": strict, "departments": list(departments)}
    )


def resolve(
    *departments: dict[str, Any],
    strict: bool = False,
    links: dict[str, Link] | None = None,
) -> tuple[list[Department], dict[str, str]]:
    settings = isolation(*departments, strict=strict)
    return resolve_departments(settings, make_tree(), make_links() if links is None else links)


def java(**overrides: Any) -> dict[str, Any]:
    return {**JAVA, **overrides}


def department_of(config: dict[str, Any], **kwargs: Any) -> Department:
    """The resolved department of ``config``, alongside Python and Mainframe."""
    departments, _ = resolve(config, PYTHON, MAINFRAME, **kwargs)
    return departments[0]


def roles(department: Department) -> dict[str, str]:
    return {gid: grant.role for gid, grant in department.grants.items()}


def template(name: str, *, deleted: bool = False) -> Template:
    return Template(id=f"tpl-{name}", name=name, organization_id=ORG, deleted=deleted)


def group_entry(scim_id: str, role: str) -> dict[str, Any]:
    """A `group` entry of Coder's TemplateACL for a group the bridge links."""
    return {
        "id": coder_id(scim_id),
        "name": coder_name(scim_id),
        "display_name": GROUPS[scim_id][0],
        "organization_id": ORG,
        "members": [],
        "total_member_count": 0,
        "source": "user",
        "role": role,
    }


def everyone(role: str = "use") -> dict[str, Any]:
    return {
        "id": ORG,
        "name": "Everyone",
        "display_name": "",
        "organization_id": ORG,
        "members": [],
        "total_member_count": 12,
        "source": "user",
        "role": role,
    }


def foreign_group(role: str = "use") -> dict[str, Any]:
    """A Coder group the bridge does not manage (created by hand in Coder)."""
    return {
        "id": "coder-design-guild",
        "name": "design-guild",
        "display_name": "Design guild",
        "organization_id": ORG,
        "members": [],
        "source": "user",
        "role": role,
    }


def user_entry(username: str = "alice", role: str = "admin") -> dict[str, Any]:
    return {
        "id": f"user-{username}",
        "username": username,
        "email": f"{username}@example.com",
        "name": username.title(),
        "status": "active",
        "role": role,
    }


def acl(*groups: dict[str, Any], users: tuple[dict[str, Any], ...] = ()) -> TemplateAcl:
    return TemplateAcl.model_validate({"users": list(users), "group": list(groups)})


def java_entries() -> tuple[dict[str, Any], dict[str, Any]]:
    """The entries a default java department wants: its admins admin, Java use."""
    return group_entry("scim-java-admins", "admin"), group_entry("scim-java", "use")


def plan_java(
    current: TemplateAcl,
    config: dict[str, Any] | None = None,
    *,
    strict: bool = False,
    links: dict[str, Link] | None = None,
    name: str = "java-spring",
) -> TemplateAclChange:
    departments, managed = resolve(config or JAVA, PYTHON, MAINFRAME, strict=strict, links=links)
    return plan_template_acl(template(name), departments[0], current, managed, ORG)


def entry_of(change: TemplateAclChange, name: str) -> tuple[str, str | None, str]:
    (entry,) = [e for e in change.entries if e.name == name]
    return entry.role, entry.wanted, entry.why


# -- who gets which role ------------------------------------------------------------------------


def test_admin_group_gets_admin_and_department_group_gets_use() -> None:
    department = department_of(JAVA)

    assert roles(department) == {"coder-java-admins": "admin", "coder-java": "use"}
    assert department.grants["coder-java-admins"].why == "admin group"
    assert department.grants["coder-java"].why == "user group"
    assert department.waiting == []


def test_user_group_replaces_department_group_for_use() -> None:
    department = department_of(java(user_group="java-developers"))

    assert roles(department) == {"coder-java-admins": "admin", "coder-java-devs": "use"}
    assert department.grants["coder-java-devs"] == Grant("java-developers", "use", "user group")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"user_group": "java-template-admins"},
            {"coder-java-admins": "admin"},
            id="user_group is the admin group",
        ),
        pytest.param(
            {"grants": [{"group": "java-template-admins", "role": "use"}]},
            {"coder-java-admins": "admin", "coder-java": "use"},
            id="grant of use to the admin group",
        ),
        pytest.param(
            {"admin_group": "Java"},
            {"coder-java": "admin"},
            id="admin group is the department group",
        ),
    ],
)
def test_admin_wins_when_one_group_is_asked_for_admin_and_use(
    overrides: dict[str, Any], expected: dict[str, str]
) -> None:
    department = department_of(java(**overrides))

    assert roles(department) == expected
    (admin_group,) = [gid for gid, role in expected.items() if role == "admin"]
    assert department.grants[admin_group].why == "admin group"


@pytest.mark.parametrize(
    ("grants", "expected"),
    [
        pytest.param(
            [{"group": "Java", "role": "admin"}], Grant("java", "admin", "grant"), id="raised"
        ),
        pytest.param(
            [{"group": "Java", "role": "use"}], Grant("java", "use", "user group"), id="same role"
        ),
    ],
)
def test_a_grant_raises_a_role_and_an_equal_one_keeps_the_first_reason(
    grants: list[dict[str, Any]], expected: Grant
) -> None:
    department = department_of(java(grants=grants))

    assert department.grants["coder-java"] == expected


@pytest.mark.parametrize(
    ("ancestors_use", "expected"),
    [
        (False, {"coder-java-admins": "admin", "coder-java": "use"}),
        (True, {"coder-java-admins": "admin", "coder-java": "use", "coder-eng": "use"}),
    ],
)
def test_ancestors_get_use_only_with_ancestors_use(
    ancestors_use: bool, expected: dict[str, str]
) -> None:
    department = department_of(java(ancestors_use=ancestors_use))

    assert roles(department) == expected
    if ancestors_use:
        assert department.grants["coder-eng"].why == "ancestor of java"


@pytest.mark.parametrize("role", ["use", "admin"])
@pytest.mark.parametrize(
    "named_by",
    [pytest.param("platform-team", id="displayName"), {"externalId": "ext-platform"}],
)
def test_grants_add_their_role(role: str, named_by: Any) -> None:
    department = department_of(java(grants=[{"group": named_by, "role": role}]))

    assert roles(department) == {
        "coder-java-admins": "admin",
        "coder-java": "use",
        "coder-platform": role,
    }
    assert department.grants["coder-platform"] == Grant("platform-team", role, "grant")


def test_grant_role_defaults_to_use() -> None:
    department = department_of(java(grants=[{"group": "platform-team"}]))

    assert department.grants["coder-platform"].role == "use"


@pytest.mark.parametrize(
    "named_by",
    ["JAVA", "java", {"displayName": "jAvA"}, {"externalId": "ext-java"}],
)
def test_department_group_is_found_by_display_name_in_any_case_or_by_external_id(
    named_by: Any,
) -> None:
    department = department_of(java(group=named_by))

    assert department.grants["coder-java"].role == "use"


def test_each_department_role_is_labelled_for_the_other_departments() -> None:
    _, managed = resolve(JAVA, PYTHON, MAINFRAME)

    assert managed["coder-python-admins"] == "department python's admin group"
    assert managed["coder-python"] == "department python's user group"
    assert managed["coder-java-admins"] == "department java's admin group"
    assert managed["coder-eng"] == "managed by the bridge"  # linked, no department role
    assert "coder-auditors" not in managed  # not in Coder: nothing to label


# -- what happens to each ACL entry -------------------------------------------------------------


def test_missing_grants_are_added() -> None:
    change = plan_java(acl())

    assert change.group_perms == {"coder-java-admins": "admin", "coder-java": "use"}
    assert change.user_perms == {}
    assert (
        "template java-spring (department java): group java-template-admins none → admin "
        "(admin group)"
    ) in change.corrections()


def test_another_departments_admin_group_is_removed_and_the_correction_says_why() -> None:
    current = acl(
        *java_entries(),
        group_entry("scim-python-admins", "admin"),
    )

    change = plan_java(current)

    assert change.group_perms == {"coder-python-admins": ""}
    assert change.corrections() == [
        "template java-spring (department java): group python-template-admins admin → removed "
        "(department python's admin group, no grant of java)"
    ]


@pytest.mark.parametrize(
    ("scim_id", "role", "label"),
    [
        ("scim-eng", "use", "managed by the bridge"),  # a parent java did not ask for
        ("scim-python", "use", "department python's user group"),
        ("scim-platform", "admin", "managed by the bridge"),
        ("scim-java-devs", "use", "managed by the bridge"),  # a subgroup: already in Java
    ],
)
def test_bridge_managed_group_without_a_grant_is_removed(
    scim_id: str, role: str, label: str
) -> None:
    current = acl(*java_entries(), group_entry(scim_id, role))

    change = plan_java(current)

    assert change.group_perms == {coder_id(scim_id): ""}
    assert entry_of(change, coder_name(scim_id)) == (role, "", f"{label}, no grant of java")


@pytest.mark.parametrize(
    ("scim_id", "now", "granted"),
    [
        ("scim-java-admins", "use", "admin"),
        ("scim-java", "admin", "use"),
    ],
)
def test_a_wrong_role_is_set_to_the_granted_role(scim_id: str, now: str, granted: str) -> None:
    entries = {"scim-java-admins": "admin", "scim-java": "use", scim_id: now}
    current = acl(*(group_entry(gid, role) for gid, role in entries.items()))

    change = plan_java(current)

    assert change.group_perms == {coder_id(scim_id): granted}
    (line,) = change.corrections()
    assert f"group {coder_name(scim_id)} {now} → {granted}" in line


@pytest.mark.parametrize(
    ("isolated", "group_perms", "wanted"),
    [(True, {ORG: ""}, ""), (False, {}, None)],
)
def test_everyone_is_removed_only_when_the_department_is_isolated(
    isolated: bool, group_perms: dict[str, str], wanted: str | None
) -> None:
    current = acl(*java_entries(), everyone())

    change = plan_java(current, java(isolated=isolated))

    assert change.group_perms == group_perms
    assert entry_of(change, "Everyone")[:2] == ("use", wanted)
    assert change.drift() == []  # Everyone is a rule, never drift


def test_everyone_removal_says_the_department_is_isolated() -> None:
    change = plan_java(acl(*java_entries(), everyone()), java(isolated=True))

    assert change.corrections() == [
        "template java-spring (department java): group Everyone use → removed "
        "(the department is isolated)"
    ]


def test_unmanaged_entries_are_kept_and_reported_as_drift_when_not_strict() -> None:
    current = acl(
        *java_entries(),
        foreign_group("use"),
        users=(user_entry("alice", "admin"),),
    )

    change = plan_java(current)

    assert change.group_perms == {}
    assert change.user_perms == {}
    assert not change.changed
    assert change.drift() == [
        "template java-spring (department java): group design-guild has use "
        "(not managed by the bridge; kept, strict is off)",
        "template java-spring (department java): user alice has admin "
        "(not managed by the bridge; kept, strict is off)",
    ]


@pytest.mark.parametrize(
    ("global_strict", "department_strict", "removed"),
    [
        pytest.param(False, None, False, id="default: kept"),
        pytest.param(True, None, True, id="global strict: removed"),
        pytest.param(True, False, False, id="department strict false overrides global"),
        pytest.param(False, True, True, id="department strict true overrides global"),
    ],
)
def test_unmanaged_entries_are_removed_only_when_the_department_is_strict(
    global_strict: bool, department_strict: bool | None, removed: bool
) -> None:
    current = acl(
        *java_entries(),
        foreign_group("admin"),
        users=(user_entry("alice", "use"),),
    )
    config = java() if department_strict is None else java(strict=department_strict)

    change = plan_java(current, config, strict=global_strict)

    if removed:
        assert change.group_perms == {"coder-design-guild": ""}
        assert change.user_perms == {"user-alice": ""}
        assert change.drift() == []
        assert (
            "template java-spring (department java): user alice use → removed "
            "(not managed by the bridge; strict)"
        ) in change.corrections()
    else:
        assert change.group_perms == {}
        assert change.user_perms == {}
        assert len(change.drift()) == 2


def test_perms_hold_exactly_the_entries_that_change() -> None:
    current = acl(
        group_entry("scim-java-admins", "admin"),  # right: not sent
        group_entry("scim-java", "admin"),  # wrong role
        group_entry("scim-python-admins", "admin"),  # another department's: removed
        group_entry("scim-eng", "use"),  # managed, not asked for: removed
        everyone("use"),  # isolated: removed
        foreign_group("use"),  # unmanaged, not strict: kept, not sent
        users=(user_entry("alice", "admin"), user_entry("bob", "use")),  # kept, not sent
    )

    change = plan_java(current, java(isolated=True, grants=[{"group": "platform-team"}]))

    assert change.group_perms == {
        "coder-java": "use",
        "coder-python-admins": "",
        "coder-eng": "",
        ORG: "",
        "coder-platform": "use",  # granted, absent: added
    }
    assert change.user_perms == {}
    assert change.changed
    assert len(change.corrections()) == len(change.group_perms)


def test_an_acl_already_as_desired_changes_nothing() -> None:
    current = acl(
        *java_entries(),
        foreign_group("use"),
        users=(user_entry("alice", "use"),),
    )

    change = plan_java(current, java(isolated=True))

    assert not change.changed  # no PATCH
    assert change.group_perms == {}
    assert change.user_perms == {}
    assert change.corrections() == []
    assert change.as_json()["in_sync"] is True


@pytest.mark.parametrize(
    "links",
    [
        pytest.param(make_links(without=("scim-java-admins",)), id="no link"),
        pytest.param(
            {
                **make_links(),
                "scim-java-admins": Link("scim-java-admins", None, "java-template-admins"),
            },
            id="link without a Coder group yet",
        ),
    ],
)
def test_groups_not_in_coder_yet_wait_and_are_described(links: dict[str, Link]) -> None:
    change = plan_java(acl(group_entry("scim-java", "use")), links=links)
    plan = TemplateAclPlan(templates=[change])

    assert change.waiting == [Grant("java-template-admins", "admin", "admin group")]
    assert change.group_perms == {}
    assert not change.changed
    assert change.as_json()["in_sync"] is False
    assert plan.describe() == [
        "… template java-spring (department java): group java-template-admins gets admin once "
        "it exists in Coder (admin group)"
    ]


def test_a_granted_group_not_in_coder_waits() -> None:
    department = department_of(java(grants=[{"group": "auditors", "role": "use"}]))

    assert department.waiting == [Grant("auditors", "use", "grant")]
    assert "coder-auditors" not in department.grants


def test_describe_marks_corrections_and_drift() -> None:
    current = acl(
        group_entry("scim-java-admins", "use"),
        group_entry("scim-java", "use"),
        users=(user_entry("alice", "use"),),
    )
    plan = TemplateAclPlan(templates=[plan_java(current)])

    assert plan.describe() == [
        "~ template java-spring (department java): group java-template-admins use → admin "
        "(admin group)",
        "? template java-spring (department java): user alice has use "
        "(not managed by the bridge; kept, strict is off)",
    ]


# -- departments that do not fit the tree -------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"group": "Jav"}, "group"),
        ({"admin_group": "java-admins"}, "admin_group"),
        ({"user_group": {"externalId": "ext-nope"}}, "user_group"),
        ({"grants": [{"group": "platform"}]}, "grants"),
    ],
)
def test_a_missing_group_names_the_department_the_group_and_the_config_key(
    overrides: dict[str, Any], key: str
) -> None:
    with pytest.raises(TemplateIsolationError) as raised:
        resolve(PYTHON, java(**overrides))

    message = str(raised.value)
    missing = overrides[key] if key != "grants" else overrides[key][0]["group"]
    shown = missing if isinstance(missing, str) else f"externalId {missing['externalId']}"
    assert f"department java names {key} {shown!r}, which is not a provisioned group" in message
    assert f"coder.template_isolation.departments[1].{key}" in message


def test_every_missing_group_is_listed_at_once() -> None:
    broken_java = java(admin_group="java-admins", grants=[{"group": "platform"}])
    broken_python = {**PYTHON, "group": "Pyhton"}

    with pytest.raises(TemplateIsolationError) as raised:
        resolve(broken_java, broken_python, MAINFRAME)

    problems = str(raised.value).split("; ")
    assert len(problems) == 3
    assert "department java names admin_group 'java-admins'" in problems[0]
    assert "department java names grants 'platform'" in problems[1]
    assert "department python names group 'Pyhton'" in problems[2]
    assert "departments[1].group" in problems[2]


# -- which department owns which template -------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "name", "owns"),
    [
        ("java-*", "java-spring", True),
        ("java-*", "Java-Spring", True),
        ("JAVA-*", "java-spring", True),
        ("java-*", "javascript", False),
        ("java-*", "my-java-spring", False),
        ("java-?", "java-8", True),
        ("java-?", "java-17", False),
        ("java-[0-9]*", "java-17", True),
        ("java-spring", "JAVA-SPRING", True),
        ("java-spring", "java-spring-boot", False),
    ],
)
def test_template_patterns_are_case_insensitive_shell_globs(
    pattern: str, name: str, owns: bool
) -> None:
    departments, _ = resolve(java(templates=[pattern]))

    owner, _ = assign_templates(departments, [template(name)])

    assert (owner.get(f"tpl-{name}") is departments[0]) is owns


def test_a_template_two_departments_match_raises_naming_the_template_and_both() -> None:
    departments, _ = resolve(JAVA, {**PYTHON, "templates": ["python-*", "*-spring"]})

    with pytest.raises(TemplateIsolationError) as raised:
        assign_templates(departments, [template("java-spring"), template("python-django")])

    assert str(raised.value).startswith(
        "template java-spring matches departments java (java-*) and python (*-spring); "
    )


def test_a_department_that_matches_no_template_is_warned() -> None:
    departments, _ = resolve(JAVA, PYTHON, MAINFRAME)

    owner, warnings = assign_templates(
        departments, [template("java-spring"), template("python-django")]
    )

    assert {t: d.name for t, d in owner.items()} == {
        "tpl-java-spring": "java",
        "tpl-python-django": "python",
    }
    assert warnings == [
        "department mainframe owns no template: no Coder template matches mainframe-*, cobol-*"
    ]


def test_deleted_templates_are_ignored() -> None:
    departments, _ = resolve(JAVA, {**PYTHON, "templates": ["python-*", "*-spring"]})
    templates = [template("java-spring", deleted=True), template("python-django")]

    owner, warnings = assign_templates(departments, templates)  # no clash: java-spring is gone

    assert list(owner) == ["tpl-python-django"]
    assert warnings == ["department java owns no template: no Coder template matches java-*"]


def test_a_template_no_department_matches_is_not_owned() -> None:
    departments, _ = resolve(JAVA, PYTHON)

    owner, _ = assign_templates(departments, [template("docker-base"), template("java-spring")])

    assert list(owner) == ["tpl-java-spring"]


# -- fingerprint --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(
            java(grants=[{"group": "platform-team", "role": "use"}]),
            java(grants=[{"group": "platform-team", "role": "admin"}]),
            id="grant role changes",
        ),
        pytest.param(java(), java(grants=[{"group": "platform-team"}]), id="grant added"),
        pytest.param(java(), java(ancestors_use=True), id="ancestors get use"),
        pytest.param(java(), java(user_group="java-developers"), id="user group changes"),
    ],
)
def test_department_fingerprint_changes_when_a_grant_changes(
    before: dict[str, Any], after: dict[str, Any]
) -> None:
    assert department_of(before).fingerprint() != department_of(after).fingerprint()


def test_department_fingerprint_changes_when_a_waiting_group_reaches_coder() -> None:
    config = java(grants=[{"group": "auditors"}])
    waiting = department_of(config)
    linked = {**make_links(), "scim-auditors": Link("scim-auditors", "coder-auditors", "auditors")}

    assert waiting.fingerprint() != department_of(config, links=linked).fingerprint()


def test_department_fingerprint_is_stable_for_the_same_inputs() -> None:
    config = java(grants=[{"group": "platform-team"}], ancestors_use=True)

    assert department_of(config).fingerprint() == department_of(config).fingerprint()


# -- configuration ------------------------------------------------------------------------------


def write_config(tmp_path: Path, *departments: str, extra: str = "") -> Path:
    """A configuration file whose coder.template_isolation lists ``departments`` (YAML)."""
    path = tmp_path / "scim-bridge.yaml"
    body = "".join(textwrap.indent(textwrap.dedent(d), " " * 6) for d in departments)
    path.write_text(f"coder:\n  template_isolation:\n{extra}    departments:\n{body}")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(path, {})
    return str(raised.value)


JAVA_YAML = """\
- name: java
  group: Java
  admin_group: java-template-admins
  templates: [java-*]
"""


def test_template_isolation_defaults() -> None:
    settings = isolation(JAVA)
    (department,) = settings.departments

    assert settings.strict is False
    assert (department.isolated, department.ancestors_use) == (False, False)
    assert department.strict is None  # follows template_isolation.strict
    assert department.user_group is None  # the department group
    assert department.grants == []
    assert TemplateIsolationSettings().departments == []


@pytest.mark.parametrize(
    ("yaml_value", "key"),
    [
        ("Java", ("name", "java")),
        ("{displayName: Java}", ("name", "java")),
        ("{externalId: 0b8c0f7e-Java}", ("external", "0b8c0f7e-Java")),
    ],
)
def test_a_department_group_is_named_by_string_or_external_id(
    tmp_path: Path, yaml_value: str, key: tuple[str, str]
) -> None:
    path = write_config(
        tmp_path,
        f"""\
        - name: java
          group: {yaml_value}
          admin_group: {yaml_value}
          user_group: {yaml_value}
          templates: [java-*]
          grants:
            - group: {yaml_value}
              role: admin
        """,
    )

    (department,) = load_settings(path, {}).coder.template_isolation.departments

    assert department.group.key == key
    assert department.admin_group.key == key
    assert department.user_group is not None and department.user_group.key == key
    assert department.grants == [
        DepartmentGrant.model_validate({"group": department.group, "role": "admin"})
    ]


def test_two_departments_claiming_the_same_pattern_is_an_error_naming_both(
    tmp_path: Path,
) -> None:
    path = write_config(
        tmp_path,
        JAVA_YAML,
        """\
        - name: python
          group: Python
          admin_group: python-template-admins
          templates: [python-*, JAVA-*]
        """,
    )

    message = config_error(path)

    assert "coder.template_isolation" in message
    assert "template 'JAVA-*' is claimed by departments java and python" in message
    assert "a template belongs to one department" in message


def test_two_departments_with_the_same_name_are_an_error(tmp_path: Path) -> None:
    path = write_config(
        tmp_path,
        JAVA_YAML,
        """\
        - name: Java
          group: Python
          admin_group: python-template-admins
          templates: [python-*]
        """,
    )

    assert "two departments are named 'Java'" in config_error(path)


def test_an_unknown_key_in_a_department_names_the_known_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path, JAVA_YAML + "  admins: java-template-admins\n")

    message = config_error(path)

    assert "coder.template_isolation.departments.0.admins: unknown key" in message
    assert (
        "use one of: name, group, templates, admin_group, user_group, ancestors_use, "
        "isolated, strict, grants"
    ) in message


def test_an_unknown_key_in_a_grant_names_the_known_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path, JAVA_YAML + "  grants: [{group: platform-team, roles: use}]\n")

    message = config_error(path)

    assert "departments.0.grants.0.roles: unknown key" in message
    assert "use one of: group, role" in message


def test_an_unknown_key_in_a_user_group_reference_names_the_known_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path, JAVA_YAML + "  user_group: {displayName: Java, id: 7}\n")

    message = config_error(path)

    assert "departments.0.user_group.id: unknown key" in message
    assert "(none)" not in message


@pytest.mark.parametrize("pattern", ["''", "'   '"])
def test_an_empty_template_pattern_is_refused(tmp_path: Path, pattern: str) -> None:
    path = write_config(tmp_path, JAVA_YAML.replace("[java-*]", f"[java-*, {pattern}]"))

    message = config_error(path)

    assert "coder.template_isolation.departments.0.templates" in message
    assert "must not be empty, e.g. java-*" in message


def test_the_templates_list_must_not_be_empty(tmp_path: Path) -> None:
    path = write_config(tmp_path, JAVA_YAML.replace("[java-*]", "[]"))

    message = config_error(path)

    assert "coder.template_isolation.departments.0.templates" in message
    assert "list at least one template name or pattern" in message


def test_the_templates_list_is_required(tmp_path: Path) -> None:
    path = write_config(tmp_path, JAVA_YAML.replace("  templates: [java-*]\n", ""))

    assert "coder.template_isolation.departments.0.templates: required" in config_error(path)


@pytest.mark.parametrize("role", ["owner", "read", ""])
def test_a_grant_role_is_admin_or_use(role: str) -> None:
    with pytest.raises(ValueError, match="'admin' or 'use'"):
        DepartmentSettings.model_validate(java(grants=[{"group": "platform-team", "role": role}]))


def test_global_strict_is_read_from_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, JAVA_YAML, extra="    strict: true\n")

    assert load_settings(path, {}).coder.template_isolation.strict is True
