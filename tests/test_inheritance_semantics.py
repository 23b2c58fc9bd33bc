"""The inheritance semantics (DESIGN.md "Semantics", docs/inheritance.md), one behaviour per
test, on SQLite and PostgreSQL.

Most tests write through the SCIM storage directly (the code path of every SCIM write) and read
what a person would look at: a group's effective members, a user's SCIM ``groups`` attribute
("direct"/"indirect") and the reasons the bridge gives. Behaviours that depend on the server's
configuration (the naming rule, the hierarchy file at start-up, SCIM errors) run over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from scim2_models import InvalidValueException

from scim_bridge.config import HierarchySettings, Settings
from scim_bridge.hierarchy.engine import CycleError
from scim_bridge.hierarchy.spec import HierarchyError
from tests.hierarchy_driver import (
    GROUP_SCHEMA,
    PATCH_OP,
    Bridge,
    add_members,
    member_ids,
    patch_group,
    post_group,
    post_user,
    user_groups,
)
from tests.server import create_token, run_server

Serve = Callable[..., httpx.Client]

CHAIN_FILE = """
version: 1
groups:
  - group: Organization
    children: [Engineering]
  - group: Engineering
    children: [Java]
"""

CASCADING_CHAIN_FILE = """
version: 1
groups:
  - group: Organization
    children: [Engineering]
  - group: Engineering
    cascade: true
    children: [Java]
"""

CASCADE_FILE = """
version: 1
groups:
  - group: Engineering
    cascade: true
    children: [Java, Python]
  - group: Java
    children: [Java Build]
"""


@pytest.fixture
def bridge(database_url: str) -> Iterator[Bridge]:
    driver = Bridge(database_url)
    try:
        yield driver
    finally:
        driver.close()


@pytest.fixture
def serve(settings: Settings, tmp_path: Path) -> Iterator[Serve]:
    """Start scim-bridge over HTTP with a hierarchy file's text and a naming delimiter, and
    return an authenticated client on /scim/v2 (once per test)."""
    with ExitStack() as stack:

        def start(hierarchy_file: str | None = None, delimiter: str | None = None) -> httpx.Client:
            file = None
            if hierarchy_file is not None:
                path = tmp_path / "hierarchy.yaml"
                path.write_text(hierarchy_file)
                file = str(path)
            hierarchy = HierarchySettings(file=file, naming_delimiter=delimiter)
            configured = settings.model_copy(update={"hierarchy": hierarchy})
            token = asyncio.run(create_token(configured.database_url, "tests"))
            server = stack.enter_context(run_server(configured, token))
            return stack.enter_context(
                httpx.Client(
                    base_url=server.scim_url,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=30,
                )
            )

        yield start


def one_edge(parent: str, child: str) -> str:
    """A hierarchy file with the single edge parent → child."""
    return f"version: 1\ngroups: [{{group: {parent}, children: [{child}]}}]\n"


def spells_cycle(text: str, names: list[str]) -> bool:
    """Whether ``text`` spells the cycle names[0] → … → names[0], from any starting group."""
    for start in range(len(names)):
        ring = names[start:] + names[:start]
        if " → ".join([*ring, ring[0]]) in text:
            return True
    return False


# -- chain ----------------------------------------------------------------------------------


def _chain(bridge: Bridge, source: str) -> str:
    """Organization → Engineering → Java, from SCIM nesting or the hierarchy file; alice is a
    direct member of Java. Returns alice's id."""
    alice = bridge.user("alice")
    java = bridge.group("Java", [alice])
    if source == "scim":
        engineering = bridge.group("Engineering", [java])
        bridge.group("Organization", [engineering])
    else:
        bridge.configure(CHAIN_FILE)
        bridge.group("Engineering")
        bridge.group("Organization")
    return alice


@pytest.mark.parametrize("source", ["scim", "file"])
def test_chain_member_of_java_is_effective_in_engineering_and_organization(
    bridge: Bridge, source: str
) -> None:
    _chain(bridge, source)
    assert bridge.effective("Java") == {"alice"}
    assert bridge.effective("Engineering") == {"alice"}
    assert bridge.effective("Organization") == {"alice"}


@pytest.mark.parametrize("source", ["scim", "file"])
def test_chain_user_groups_says_direct_and_indirect(bridge: Bridge, source: str) -> None:
    alice = _chain(bridge, source)
    assert bridge.groups(alice) == {
        "Java": "direct",
        "Engineering": "indirect",
        "Organization": "indirect",
    }


@pytest.mark.parametrize("source", ["scim", "file"])
def test_chain_reasons_spell_the_path_up_from_the_users_group(bridge: Bridge, source: str) -> None:
    _chain(bridge, source)
    assert bridge.why("alice") == {
        "Java": ["direct"],
        "Engineering": ["via Java → Engineering"],
        "Organization": ["via Java → Engineering → Organization"],
    }


def test_chain_does_not_reach_down_or_sideways(bridge: Bridge) -> None:
    bob = bridge.user("bob")
    alice = bridge.user("alice")
    java = bridge.group("Java", [alice])
    python = bridge.group("Python")
    bridge.group("Engineering", [java, python, bob])
    assert bridge.effective("Java") == {"alice"}
    assert bridge.effective("Python") == set()
    assert bridge.groups(bob) == {"Engineering": "direct"}


# -- diamond --------------------------------------------------------------------------------


def _diamond(bridge: Bridge) -> tuple[str, dict[str, str]]:
    """Organization → Engineering → Java and Organization → Backend → Java; alice in Java."""
    alice = bridge.user("alice")
    groups: dict[str, str] = {}
    groups["Java"] = bridge.group("Java", [alice])
    groups["Engineering"] = bridge.group("Engineering", [groups["Java"]])
    groups["Backend"] = bridge.group("Backend", [groups["Java"]])
    groups["Organization"] = bridge.group(
        "Organization", [groups["Engineering"], groups["Backend"]]
    )
    return alice, groups


def test_diamond_two_paths_to_a_group_give_one_membership(bridge: Bridge) -> None:
    alice, _ = _diamond(bridge)
    assert bridge.effective("Organization") == {"alice"}
    assert bridge.effective_total("Organization") == 1
    assert bridge.groups(alice) == {  # groups() also checks that no group is listed twice
        "Java": "direct",
        "Backend": "indirect",
        "Engineering": "indirect",
        "Organization": "indirect",
    }


def test_diamond_two_paths_to_a_group_give_two_reasons(bridge: Bridge) -> None:
    _diamond(bridge)
    assert sorted(bridge.why("alice")["Organization"]) == [
        "via Java → Backend → Organization",
        "via Java → Engineering → Organization",
    ]


def test_diamond_membership_survives_losing_one_path_and_ends_with_the_last(
    bridge: Bridge,
) -> None:
    _, groups = _diamond(bridge)
    bridge.remove(groups["Backend"], groups["Java"])
    assert bridge.effective("Organization") == {"alice"}
    assert bridge.why("alice")["Organization"] == ["via Java → Engineering → Organization"]
    bridge.remove(groups["Engineering"], groups["Java"])
    assert bridge.effective("Organization") == set()
    assert bridge.why("alice") == {"Java": ["direct"]}


def test_member_of_two_departments_stays_in_the_parent_until_it_leaves_both(
    bridge: Bridge,
) -> None:
    alice = bridge.user("alice")
    java = bridge.group("Java", [alice])
    python = bridge.group("Python", [alice])
    bridge.group("Engineering", [java, python])
    assert bridge.effective_total("Engineering") == 1
    assert sorted(bridge.why("alice")["Engineering"]) == [
        "via Java → Engineering",
        "via Python → Engineering",
    ]
    bridge.remove(java, alice)
    assert bridge.why("alice")["Engineering"] == ["via Python → Engineering"]
    bridge.remove(python, alice)
    assert bridge.effective("Engineering") == set()
    assert bridge.groups(alice) == {}


def test_direct_and_inherited_membership_of_one_group_is_direct_with_both_reasons(
    bridge: Bridge,
) -> None:
    alice = bridge.user("alice")
    java = bridge.group("Java", [alice])
    engineering = bridge.group("Engineering", [java, alice])
    assert bridge.groups(alice) == {"Java": "direct", "Engineering": "direct"}
    assert bridge.why("alice")["Engineering"] == ["direct", "via Java → Engineering"]
    bridge.remove(engineering, alice)
    assert bridge.groups(alice) == {"Java": "direct", "Engineering": "indirect"}
    assert bridge.effective("Engineering") == {"alice"}


# -- cascade --------------------------------------------------------------------------------


def _cascade(bridge: Bridge) -> dict[str, str]:
    """Engineering (cascade) → Java → Java Build, Engineering → Python; lead is a direct
    member of Engineering, dev of Java."""
    bridge.configure(CASCADE_FILE)
    users = {name: bridge.user(name) for name in ("lead", "dev")}
    bridge.group("Engineering", [users["lead"]])
    bridge.group("Java", [users["dev"]])
    bridge.group("Python")
    bridge.group("Java Build")
    return users


def test_cascade_direct_members_are_effective_in_every_descendant(bridge: Bridge) -> None:
    users = _cascade(bridge)
    for group in ("Java", "Python", "Java Build"):
        assert "lead" in bridge.effective(group), group
    assert bridge.groups(users["lead"]) == {
        "Engineering": "direct",
        "Java": "indirect",
        "Java Build": "indirect",
        "Python": "indirect",
    }


def test_cascade_reason_names_the_cascading_group(bridge: Bridge) -> None:
    _cascade(bridge)
    assert bridge.why("lead") == {
        "Engineering": ["direct"],
        "Java": ["cascade from Engineering"],
        "Java Build": ["cascade from Engineering"],
        "Python": ["cascade from Engineering"],
    }


def test_cascade_passes_only_direct_members_never_rolled_up_ones(bridge: Bridge) -> None:
    _cascade(bridge)
    assert "dev" in bridge.effective("Engineering")  # rolled up from Java ...
    assert bridge.effective("Python") == {"lead"}  # ... but not passed down again
    assert bridge.effective("Java Build") == {"lead"}
    assert bridge.why("dev") == {"Java": ["direct"], "Engineering": ["via Java → Engineering"]}


def test_cascade_from_two_cascading_ancestors_still_passes_only_their_direct_members(
    bridge: Bridge,
) -> None:
    bridge.configure(
        """
        version: 1
        groups:
          - group: Organization
            cascade: true
            children: [Engineering]
          - group: Engineering
            cascade: true
            children: [Java, Python]
        """
    )
    cto, lead, dev = (bridge.user(name) for name in ("cto", "lead", "dev"))
    bridge.group("Organization", [cto])
    bridge.group("Engineering", [lead])
    bridge.group("Java", [dev])
    bridge.group("Python")
    assert bridge.effective("Python") == {"cto", "lead"}
    assert bridge.effective("Organization") == {"cto", "lead", "dev"}
    assert bridge.why("cto")["Python"] == ["cascade from Organization"]
    assert bridge.why("lead")["Organization"] == ["via Engineering → Organization"]
    assert bridge.why("lead")["Python"] == ["cascade from Engineering"]


def test_cascaded_members_do_not_roll_up_into_another_parent(bridge: Bridge) -> None:
    """Java has two parents: Engineering (cascading) and Backend. Engineering's lead is in
    Java by cascade, which is not a direct membership, so it does not roll up into Backend."""
    users = _cascade(bridge)
    java = bridge.group_id("Java")
    bridge.group("Backend", [java])
    assert bridge.effective("Backend") == {"dev"}
    assert "Backend" not in bridge.groups(users["lead"])


def test_cascade_turned_off_takes_the_cascaded_memberships_away(bridge: Bridge) -> None:
    users = _cascade(bridge)
    bridge.configure(CASCADE_FILE.replace("cascade: true", "cascade: false"))
    assert bridge.effective("Java") == {"dev"}
    assert bridge.groups(users["lead"]) == {"Engineering": "direct"}


# -- roll-up is the default ----------------------------------------------------------------------


def test_roll_up_is_the_default_members_of_a_parent_are_not_members_of_its_children(
    bridge: Bridge,
) -> None:
    bridge.configure(CASCADE_FILE.replace("    cascade: true\n", ""))
    lead, dev = bridge.user("lead"), bridge.user("dev")
    java = bridge.group("Java", [dev])
    bridge.group("Engineering", [lead])
    bridge.group("Platform", [java, lead])  # a SCIM parent: no cascade either
    assert bridge.effective("Engineering") == {"lead", "dev"}
    assert bridge.effective("Platform") == {"lead", "dev"}
    assert bridge.effective("Java") == {"dev"}
    assert bridge.why("lead") == {"Engineering": ["direct"], "Platform": ["direct"]}


# -- deactivation ---------------------------------------------------------------------------


def _deactivation(bridge: Bridge) -> dict[str, str]:
    """Organization → Engineering (cascade) → Java from the file; alice in Java, lead in
    Engineering."""
    bridge.configure(CASCADING_CHAIN_FILE)
    ids = {"alice": bridge.user("alice"), "lead": bridge.user("lead")}
    ids["Java"] = bridge.group("Java", [ids["alice"]])
    ids["Engineering"] = bridge.group("Engineering", [ids["lead"]])
    ids["Organization"] = bridge.group("Organization")
    return ids


def test_deactivated_user_has_no_effective_memberships(bridge: Bridge) -> None:
    ids = _deactivation(bridge)
    bridge.set_active(ids["alice"], False)
    bridge.set_active(ids["lead"], False)
    for group in ("Java", "Engineering", "Organization"):
        assert bridge.effective(group) == set(), group
    assert bridge.why("alice") == {}
    assert bridge.why("lead") == {}


def test_deactivated_user_keeps_its_stored_memberships(bridge: Bridge) -> None:
    ids = _deactivation(bridge)
    bridge.set_active(ids["alice"], False)
    assert bridge.member_ids(ids["Java"]) == {ids["alice"]}


def test_deactivated_user_lists_no_inherited_group_in_user_groups(bridge: Bridge) -> None:
    ids = _deactivation(bridge)
    bridge.set_active(ids["alice"], False)
    listed = bridge.groups(ids["alice"])
    assert "indirect" not in listed.values(), listed


def test_deactivated_user_is_not_found_by_a_filter_on_an_inherited_group(
    scim: httpx.Client,
) -> None:
    alice = post_user(scim, "alice")
    java = post_group(scim, "Java", [alice])
    post_group(scim, "Engineering", [java])
    found = scim.get("/Users", params={"filter": 'groups.display eq "Engineering"'})
    assert found.json()["totalResults"] == 1
    response = scim.patch(
        f"/Users/{alice}",
        json={
            "schemas": [PATCH_OP],
            "Operations": [{"op": "replace", "path": "active", "value": False}],
        },
    )
    assert response.status_code == 200, response.text
    found = scim.get("/Users", params={"filter": 'groups.display eq "Engineering"'})
    assert found.json()["totalResults"] == 0


def test_reactivated_user_gets_every_effective_membership_back(bridge: Bridge) -> None:
    ids = _deactivation(bridge)
    before = {name: bridge.why(name) for name in ("alice", "lead")}
    for user in ("alice", "lead"):
        bridge.set_active(ids[user], False)
        bridge.set_active(ids[user], True)
    assert {name: bridge.why(name) for name in ("alice", "lead")} == before
    assert bridge.effective("Java") == {"alice", "lead"}
    assert bridge.groups(ids["alice"]) == {
        "Java": "direct",
        "Engineering": "indirect",
        "Organization": "indirect",
    }


def test_tree_changes_made_while_deactivated_apply_on_reactivation(bridge: Bridge) -> None:
    ids = _deactivation(bridge)
    bridge.set_active(ids["alice"], False)
    bridge.group("Platform", [ids["Java"]])
    bridge.configure(CASCADING_CHAIN_FILE.replace("children: [Engineering]", "children: []"))
    assert bridge.effective("Platform") == set()
    bridge.set_active(ids["alice"], True)
    assert bridge.why("alice") == {
        "Java": ["direct"],
        "Engineering": ["via Java → Engineering"],
        "Platform": ["via Java → Platform"],
    }


# -- group deletion -------------------------------------------------------------------------


def _nested(bridge: Bridge) -> dict[str, str]:
    """Organization ∋ Engineering ∋ Java over SCIM; alice in Java, bob in Engineering."""
    ids = {"alice": bridge.user("alice"), "bob": bridge.user("bob")}
    ids["Java"] = bridge.group("Java", [ids["alice"]])
    ids["Engineering"] = bridge.group("Engineering", [ids["Java"], ids["bob"]])
    ids["Organization"] = bridge.group("Organization", [ids["Engineering"]])
    return ids


def test_deleting_a_group_removes_it_from_the_tree(bridge: Bridge) -> None:
    ids = _nested(bridge)
    bridge.delete_group(ids["Engineering"])
    assert bridge.group_names() == {"Java", "Organization"}
    assert bridge.edges() == {}


def test_deleting_a_group_removes_the_memberships_inherited_through_it(bridge: Bridge) -> None:
    ids = _nested(bridge)
    bridge.delete_group(ids["Engineering"])
    assert bridge.why("alice") == {"Java": ["direct"]}
    assert bridge.groups(ids["alice"]) == {"Java": "direct"}
    assert bridge.why("bob") == {}
    assert bridge.effective("Organization") == set()


def test_deleting_a_child_group_removes_its_members_from_the_ancestors(bridge: Bridge) -> None:
    ids = _nested(bridge)
    bridge.delete_group(ids["Java"])
    assert bridge.effective("Engineering") == {"bob"}
    assert bridge.effective("Organization") == {"bob"}
    assert bridge.why("alice") == {}


def test_deleting_a_cascading_group_removes_what_it_cascaded(bridge: Bridge) -> None:
    users = _cascade(bridge)
    bridge.delete_group(bridge.group_id("Engineering"))
    assert bridge.effective("Java") == {"dev"}
    assert bridge.effective("Python") == set()
    assert bridge.groups(users["lead"]) == {}


def test_a_deleted_group_named_by_the_file_rejoins_the_tree_when_provisioned_again(
    bridge: Bridge,
) -> None:
    _chain(bridge, "file")
    bridge.delete_group(bridge.group_id("Engineering"))
    assert bridge.why("alice") == {"Java": ["direct"]}
    bridge.group("Engineering")
    assert bridge.why("alice")["Organization"] == ["via Java → Engineering → Organization"]


# -- cycles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("other_edge", ["scim", "file", "name"])
def test_cycle_from_scim_is_refused_with_invalid_value_naming_it_and_changes_nothing(
    serve: Serve, bridge: Bridge, other_edge: str
) -> None:
    """Engineering → Java already exists (from ``other_edge``); a SCIM request that makes
    Engineering a member of Java is refused."""
    java_name = "Engineering/Java" if other_edge == "name" else "Java"
    hierarchy_file = one_edge("Engineering", "Java")
    scim = serve(
        hierarchy_file=hierarchy_file if other_edge == "file" else None,
        delimiter="/" if other_edge == "name" else None,
    )
    alice = post_user(scim, "alice")
    java = post_group(scim, java_name, [alice])
    engineering = post_group(scim, "Engineering", [java] if other_edge == "scim" else [])
    before = (user_groups(scim, alice), bridge.edges())
    assert before[0] == {java_name: "direct", "Engineering": "indirect"}

    response = add_members(scim, java, engineering)

    assert response.status_code == 400, response.text
    error = response.json()
    assert error["scimType"] == "invalidValue"
    assert f"{java_name} → Engineering → {java_name}" in error["detail"]
    assert member_ids(scim, java) == {alice}
    assert (user_groups(scim, alice), bridge.edges()) == before


def test_cycle_from_scim_through_all_three_sources_is_refused_naming_it(
    serve: Serve, bridge: Bridge
) -> None:
    scim = serve(
        hierarchy_file=one_edge("Platform", "Engineering"),
        delimiter="/",
    )
    platform = post_group(scim, "Platform")
    post_group(scim, "Engineering")
    java = post_group(scim, "Engineering/Java")
    response = add_members(scim, java, platform)
    assert response.status_code == 400, response.text
    assert response.json()["scimType"] == "invalidValue"
    detail = response.json()["detail"]
    assert "Engineering/Java → Platform → Engineering → Engineering/Java" in detail
    assert member_ids(scim, java) == set()


def test_hierarchy_file_closing_a_cycle_with_scim_edges_is_rejected_as_a_whole(
    database_url: str, tmp_path: Path
) -> None:
    hierarchy_file = tmp_path / "hierarchy.yaml"
    hierarchy_file.write_text(CHAIN_FILE)
    bridge = Bridge(database_url, HierarchySettings(file=str(hierarchy_file)))
    try:
        bridge.start()
        alice, bob = bridge.user("alice"), bridge.user("bob")
        java = bridge.group("Java", [alice])
        bridge.group("Engineering")
        bridge.group("Organization")
        bridge.group("Python", [bob])
        bridge.group("Platform", [java])  # SCIM: Platform ∋ Java
        before = (bridge.edges(), bridge.why("alice"), bridge.why("bob"))
        hierarchy_file.write_text(
            CHAIN_FILE.replace("[Java]", "[Java, Python]")
            + "  - group: Java\n    children: [Platform]\n"
        )

        outcome = bridge.reload()

        assert not outcome.applied
        assert "rejected, previous tree kept" in outcome.message
        assert spells_cycle(outcome.message, ["Java", "Platform"])
        assert (bridge.edges(), bridge.why("alice"), bridge.why("bob")) == before
        assert "Engineering" not in bridge.why("bob")  # Python's new edge was not applied
    finally:
        bridge.close()


def test_hierarchy_file_with_a_cycle_of_its_own_is_rejected_as_a_whole(
    database_url: str, tmp_path: Path
) -> None:
    hierarchy_file = tmp_path / "hierarchy.yaml"
    hierarchy_file.write_text(CHAIN_FILE)
    bridge = Bridge(database_url, HierarchySettings(file=str(hierarchy_file)))
    try:
        bridge.start()
        alice, bob = bridge.user("alice"), bridge.user("bob")
        bridge.group("Java", [alice])
        bridge.group("Python", [bob])
        bridge.group("Engineering")
        before = bridge.edges()
        hierarchy_file.write_text(
            CHAIN_FILE.replace("[Java]", "[Java, Python]")
            + "  - group: Java\n    children: [Organization]\n"
        )

        outcome = bridge.reload()

        assert not outcome.applied
        assert (
            "the file makes a cycle: Engineering → Java → Organization → Engineering"
            in outcome.message
        )
        assert bridge.edges() == before
        assert bridge.why("bob") == {"Python": ["direct"]}
        bridge.group("Organization")  # placed by the file still in force
        assert bridge.why("alice")["Organization"] == ["via Java → Engineering → Organization"]
    finally:
        bridge.close()


def test_hierarchy_file_closing_a_cycle_is_refused_by_configure_and_changes_nothing(
    bridge: Bridge,
) -> None:
    alice = bridge.user("alice")
    java = bridge.group("Java", [alice])
    bridge.group("Engineering", [java])
    before = (bridge.edges(), bridge.why("alice"))
    with pytest.raises(CycleError) as refused:
        bridge.configure(one_edge("Java", "Engineering"))
    assert spells_cycle(str(refused.value), ["Engineering", "Java"])
    assert (bridge.edges(), bridge.why("alice")) == before


def test_hierarchy_file_with_a_cycle_stops_the_start_naming_it(
    database_url: str, tmp_path: Path
) -> None:
    hierarchy_file = tmp_path / "hierarchy.yaml"
    hierarchy_file.write_text(one_edge("Java", "Engineering"))
    bridge = Bridge(database_url, HierarchySettings(file=str(hierarchy_file)))
    try:
        java = bridge.group("Java")
        bridge.group("Engineering", [java])
        with pytest.raises(HierarchyError, match="rejected") as refused:
            bridge.start()
        assert spells_cycle(str(refused.value), ["Engineering", "Java"])
        assert bridge.edges() == {("Engineering", "Java"): ["scim"]}
    finally:
        bridge.close()


RENAME_FILES = {
    "scim": None,
    "file-by-external-id": one_edge("{externalId: java-1}", "Engineering"),
    "file-by-the-new-name": one_edge("Engineering/Java", "Engineering"),
}


@pytest.mark.parametrize("other_edge", sorted(RENAME_FILES))
def test_rename_that_would_close_a_cycle_through_the_naming_rule_is_refused(
    bridge: Bridge, other_edge: str
) -> None:
    """Renaming Java to Engineering/Java makes it Engineering's child by the naming rule; it is
    refused when Java is (or, under its new name, would be) Engineering's parent as well."""
    bridge.configure(RENAME_FILES[other_edge], delimiter="/")
    alice = bridge.user("alice")
    engineering = bridge.group("Engineering", [alice])
    java = bridge.group("Java", [engineering] if other_edge == "scim" else [], "java-1")
    before = (bridge.edges(), bridge.why("alice"))
    with pytest.raises(InvalidValueException) as refused:
        bridge.rename(java, "Engineering/Java")
    assert "Engineering/Java → Engineering → Engineering/Java" in str(refused.value.detail)
    assert bridge.group_names() == {"Engineering", "Java"}
    assert (bridge.edges(), bridge.why("alice")) == before


@pytest.mark.parametrize("other_edge", ["scim", "file"])
def test_create_that_would_close_a_cycle_through_the_naming_rule_is_refused(
    bridge: Bridge, other_edge: str
) -> None:
    """A new group named Engineering/Java that is also Engineering's parent is refused."""
    bridge.configure(
        one_edge("Engineering/Java", "Engineering") if other_edge == "file" else None,
        delimiter="/",
    )
    engineering = bridge.group("Engineering")
    with pytest.raises(InvalidValueException) as refused:
        bridge.group("Engineering/Java", [engineering] if other_edge == "scim" else [])
    assert "Engineering/Java → Engineering → Engineering/Java" in str(refused.value.detail)
    assert bridge.group_names() == {"Engineering"}
    assert bridge.edges() == {}


def test_turning_the_naming_rule_on_when_it_would_close_a_cycle_is_refused(
    bridge: Bridge,
) -> None:
    engineering = bridge.group("Engineering")
    bridge.group("Engineering/Java", [engineering])  # Engineering/Java ∋ Engineering
    with pytest.raises(CycleError) as refused:
        bridge.configure(None, delimiter="/")
    assert spells_cycle(str(refused.value), ["Engineering", "Engineering/Java"])
    assert bridge.edges() == {("Engineering/Java", "Engineering"): ["scim"]}


def _start_with_naming_rule_closing_a_cycle(database_url: str) -> tuple[Bridge, str]:
    """Engineering/Java ∋ Engineering over SCIM, then a start with the naming rule on; returns
    the refusal's message."""
    bridge = Bridge(database_url, HierarchySettings(naming_delimiter="/"))
    engineering = bridge.group("Engineering")
    bridge.group("Engineering/Java", [engineering])
    with pytest.raises(HierarchyError) as refused:
        bridge.start()
    return bridge, str(refused.value)


def test_naming_rule_closing_a_cycle_at_start_up_stops_the_start_naming_it(
    database_url: str,
) -> None:
    bridge, message = _start_with_naming_rule_closing_a_cycle(database_url)
    try:
        assert spells_cycle(message, ["Engineering", "Engineering/Java"])
        assert bridge.edges() == {("Engineering/Java", "Engineering"): ["scim"]}
    finally:
        bridge.close()


def test_naming_rule_closing_a_cycle_at_start_up_is_not_blamed_on_a_missing_file(
    database_url: str,
) -> None:
    bridge, message = _start_with_naming_rule_closing_a_cycle(database_url)
    try:
        assert "None" not in message
    finally:
        bridge.close()


# -- the hierarchy file may name groups not provisioned yet ----------------------------------------


def test_hierarchy_file_may_name_groups_not_provisioned_yet(serve: Serve, bridge: Bridge) -> None:
    scim = serve(hierarchy_file=CHAIN_FILE)
    alice = post_user(scim, "alice")
    post_group(scim, "Java", [alice])
    assert bridge.edges() == {}
    assert user_groups(scim, alice) == {"Java": "direct"}


def test_hierarchy_file_edge_takes_effect_when_the_group_arrives_by_display_name(
    serve: Serve, bridge: Bridge
) -> None:
    scim = serve(hierarchy_file=CHAIN_FILE)
    alice = post_user(scim, "alice")
    post_group(scim, "Java", [alice])
    post_group(scim, "Engineering")
    assert user_groups(scim, alice) == {"Java": "direct", "Engineering": "indirect"}
    post_group(scim, "Organization")
    assert user_groups(scim, alice) == {
        "Java": "direct",
        "Engineering": "indirect",
        "Organization": "indirect",
    }
    assert bridge.edges() == {
        ("Organization", "Engineering"): ["file"],
        ("Engineering", "Java"): ["file"],
    }


def test_hierarchy_file_matches_display_names_case_insensitively(
    serve: Serve, bridge: Bridge
) -> None:
    scim = serve(hierarchy_file=one_edge("ENGINEERING", "java"))
    alice = post_user(scim, "alice")
    post_group(scim, "Java", [alice])
    post_group(scim, "Engineering")
    assert user_groups(scim, alice) == {"Java": "direct", "Engineering": "indirect"}


ENTRA_FILE = """
version: 1
groups:
  - group: {externalId: 6c2a7f31-0a4e-4c55-9b1e-2f3f4a0d9e11}
    children:
      - {externalId: 0b8c0f7e-5d2b-4f43-a1b6-93c9f1e2d4a7}
"""


def test_hierarchy_file_edge_takes_effect_when_the_group_arrives_by_external_id(
    serve: Serve, bridge: Bridge
) -> None:
    scim = serve(hierarchy_file=ENTRA_FILE)
    alice = post_user(scim, "alice")
    post_group(scim, "Dept Java", [alice], externalId="0b8c0f7e-5d2b-4f43-a1b6-93c9f1e2d4a7")
    post_group(scim, "All Engineering", externalId="6c2a7f31-0a4e-4c55-9b1e-2f3f4a0d9e11")
    assert user_groups(scim, alice) == {"Dept Java": "direct", "All Engineering": "indirect"}
    assert bridge.edges() == {("All Engineering", "Dept Java"): ["file"]}


def test_hierarchy_file_edge_takes_effect_when_a_group_gets_its_external_id_later(
    serve: Serve,
) -> None:
    scim = serve(hierarchy_file=ENTRA_FILE)
    alice = post_user(scim, "alice")
    java = post_group(scim, "Dept Java", [alice])
    post_group(scim, "All Engineering", externalId="6c2a7f31-0a4e-4c55-9b1e-2f3f4a0d9e11")
    assert user_groups(scim, alice) == {"Dept Java": "direct"}
    response = patch_group(
        scim,
        java,
        {"op": "replace", "path": "externalId", "value": "0b8c0f7e-5d2b-4f43-a1b6-93c9f1e2d4a7"},
    )
    assert response.status_code == 200, response.text
    assert user_groups(scim, alice) == {"Dept Java": "direct", "All Engineering": "indirect"}


def test_hierarchy_file_compares_external_ids_exactly(serve: Serve) -> None:
    scim = serve(hierarchy_file=ENTRA_FILE)
    alice = post_user(scim, "alice")
    post_group(scim, "Dept Java", [alice], externalId="0B8C0F7E-5D2B-4F43-A1B6-93C9F1E2D4A7")
    post_group(scim, "All Engineering", externalId="6c2a7f31-0a4e-4c55-9b1e-2f3f4a0d9e11")
    assert user_groups(scim, alice) == {"Dept Java": "direct"}


def test_cascade_in_the_file_applies_when_the_cascading_group_arrives(
    serve: Serve, bridge: Bridge
) -> None:
    scim = serve(hierarchy_file=CASCADE_FILE)
    lead = post_user(scim, "lead")
    post_group(scim, "Java")
    post_group(scim, "Engineering", [lead])
    assert user_groups(scim, lead) == {"Engineering": "direct", "Java": "indirect"}
    assert bridge.why("lead")["Java"] == ["cascade from Engineering"]


# -- the naming rule ------------------------------------------------------------------------


def test_naming_rule_is_off_by_default(scim: httpx.Client, bridge: Bridge) -> None:
    assert Settings().hierarchy.naming_delimiter is None
    alice = post_user(scim, "alice")
    post_group(scim, "Engineering")
    post_group(scim, "Engineering/Java", [alice])
    assert user_groups(scim, alice) == {"Engineering/Java": "direct"}
    assert bridge.edges() == {}


@pytest.mark.parametrize("delimiter", ["/", " > ", "::"])
def test_naming_rule_with_a_delimiter_makes_a_group_a_child_of_its_prefix(
    serve: Serve, bridge: Bridge, delimiter: str
) -> None:
    scim = serve(delimiter=delimiter)
    engineering = f"Organization{delimiter}Engineering"
    java = f"{engineering}{delimiter}Java"
    alice = post_user(scim, "alice")
    for name in ("Organization", engineering):
        post_group(scim, name)
    post_group(scim, java, [alice])
    assert user_groups(scim, alice) == {
        java: "direct",
        engineering: "indirect",
        "Organization": "indirect",
    }
    assert bridge.edges() == {
        ("Organization", engineering): ["name"],
        (engineering, java): ["name"],
    }
    assert bridge.why("alice")["Organization"] == [f"via {java} → {engineering} → Organization"]


def test_naming_rule_edge_appears_when_the_parent_arrives_later(serve: Serve) -> None:
    scim = serve(delimiter="/")
    alice = post_user(scim, "alice")
    post_group(scim, "Engineering/Java", [alice])
    assert user_groups(scim, alice) == {"Engineering/Java": "direct"}
    post_group(scim, "Engineering")
    assert user_groups(scim, alice) == {"Engineering/Java": "direct", "Engineering": "indirect"}


def test_naming_rule_rename_moves_a_group_to_its_new_parent(serve: Serve) -> None:
    scim = serve(delimiter="/")
    alice = post_user(scim, "alice")
    post_group(scim, "Engineering")
    post_group(scim, "Platform")
    java = post_group(scim, "Engineering/Java", [alice])
    response = patch_group(
        scim, java, {"op": "replace", "path": "displayName", "value": "Platform/Java"}
    )
    assert response.status_code == 200, response.text
    assert user_groups(scim, alice) == {"Platform/Java": "direct", "Platform": "indirect"}


def test_naming_rule_compares_the_parent_name_case_insensitively(serve: Serve) -> None:
    scim = serve(delimiter="/")
    alice = post_user(scim, "alice")
    post_group(scim, "Engineering")
    post_group(scim, "ENGINEERING/Java", [alice])
    assert user_groups(scim, alice) == {"ENGINEERING/Java": "direct", "Engineering": "indirect"}


def test_naming_rule_turned_on_later_applies_to_groups_already_provisioned(
    bridge: Bridge,
) -> None:
    alice = bridge.user("alice")
    bridge.group("Engineering")
    bridge.group("Engineering/Java", [alice])
    assert bridge.why("alice") == {"Engineering/Java": ["direct"]}
    bridge.configure(None, delimiter="/")
    assert bridge.why("alice")["Engineering"] == ["via Engineering/Java → Engineering"]
    bridge.configure(None, delimiter=None)
    assert bridge.why("alice") == {"Engineering/Java": ["direct"]}


# -- SCIM nested groups ------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["type-Group", "ref-to-Groups", "bare-value"])
def test_scim_group_member_that_is_a_group_makes_an_edge(
    scim: httpx.Client, bridge: Bridge, form: str
) -> None:
    alice = post_user(scim, "alice")
    java = post_group(scim, "Java", [alice])
    member = {"value": java}
    if form == "type-Group":
        member["type"] = "Group"
    if form == "ref-to-Groups":
        member["$ref"] = f"{scim.base_url}/Groups/{java}"
    body = {"schemas": [GROUP_SCHEMA], "displayName": "Engineering", "members": [member]}
    response = scim.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    assert bridge.edges() == {("Engineering", "Java"): ["scim"]}
    assert user_groups(scim, alice) == {"Java": "direct", "Engineering": "indirect"}


# -- the three sources merged ---------------------------------------------------------------


def test_three_sources_merge_into_one_tree(bridge: Bridge) -> None:
    bridge.configure(one_edge("Engineering", "Java"), "/")
    alice, bob = bridge.user("alice"), bridge.user("bob")
    bridge.group("Java", [alice])  # file edge
    bridge.group("Engineering/Python", [bob])  # name edge
    engineering = bridge.group("Engineering")
    bridge.group("Organization", [engineering])  # SCIM edge
    assert bridge.edges() == {
        ("Organization", "Engineering"): ["scim"],
        ("Engineering", "Java"): ["file"],
        ("Engineering", "Engineering/Python"): ["name"],
    }
    assert bridge.effective("Organization") == {"alice", "bob"}
    assert bridge.why("alice")["Organization"] == ["via Java → Engineering → Organization"]
    assert bridge.why("bob")["Organization"] == [
        "via Engineering/Python → Engineering → Organization"
    ]


def test_an_edge_declared_by_two_sources_counts_once(bridge: Bridge) -> None:
    bridge.configure(one_edge("Engineering", "Java"))
    alice = bridge.user("alice")
    java = bridge.group("Java", [alice])
    bridge.group("Engineering", [java])
    assert bridge.edges() == {("Engineering", "Java"): ["file", "scim"]}
    assert bridge.effective_total("Engineering") == 1
    assert bridge.why("alice") == {"Java": ["direct"], "Engineering": ["via Java → Engineering"]}
    assert bridge.groups(alice) == {"Java": "direct", "Engineering": "indirect"}


def test_an_edge_declared_by_all_three_sources_counts_once(bridge: Bridge) -> None:
    bridge.configure(one_edge("Engineering", "Engineering/Java"), "/")
    alice = bridge.user("alice")
    java = bridge.group("Engineering/Java", [alice])
    bridge.group("Engineering", [java])
    assert bridge.edges() == {("Engineering", "Engineering/Java"): ["file", "name", "scim"]}
    assert bridge.effective_total("Engineering") == 1
    assert bridge.why("alice")["Engineering"] == ["via Engineering/Java → Engineering"]


def test_an_edge_declared_twice_lasts_until_its_last_source_drops_it(bridge: Bridge) -> None:
    bridge.configure(one_edge("Engineering", "Java"))
    alice = bridge.user("alice")
    java = bridge.group("Java", [alice])
    engineering = bridge.group("Engineering", [java])
    bridge.remove(engineering, java)
    assert bridge.edges() == {("Engineering", "Java"): ["file"]}
    assert bridge.effective("Engineering") == {"alice"}
    bridge.configure(None)
    assert bridge.edges() == {}
    assert bridge.effective("Engineering") == set()
    assert bridge.groups(alice) == {"Java": "direct"}
