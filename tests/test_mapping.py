"""Mapping mode: the tree as Coder's IdP group-sync mapping (coder/mapping.py, contract §5.1, §9).

Unit tests of the pure mapping and diff, then end to end over HTTP on both databases: Okta-style
flat provisioning plus a hierarchy file, the bridge in mapping mode against the Coder double,
and users logging in through the double's OIDC group sync. The organisation of the end-to-end
tests (Engineering cascades its direct members, bob, to every department):

    Organization
    ├── Engineering (bob)   cascade
    │   ├── Java (alice)
    │   └── Python (carol)
    └── Template Admins (dave)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from scim_bridge.cli import main
from scim_bridge.coder.client import CoderGroup, ReducedUser
from scim_bridge.coder.mapping import (
    ClaimAttribute,
    desired_mapping,
    group_sync_settings,
    mapping_diff,
)
from scim_bridge.coder.plan import (
    DesiredGroup,
    Link,
    PlanSettings,
    ScimUserInfo,
    UserIndex,
    compute_plan,
)
from scim_bridge.coderdouble.config import DoubleConfig
from scim_bridge.coderdouble.models import GroupSyncSettings
from scim_bridge.config import CoderSettings, HierarchySettings, Settings
from scim_bridge.hierarchy.engine import GroupInfo, Tree, TreeInputs
from scim_bridge.hierarchy.graph import EdgeSource, GroupGraph
from tests.coder_fixtures import (
    LiveCoder,
    assert_equal,
    eventually,
    full_sync,
    run_coder_double,
)
from tests.server import LiveServer, create_token, run_server
from tests.test_sync_api_mode import GROUP, PATCH, USER, coder_groups, scim_client

# -- the pure mapping ---------------------------------------------------------------------


def make_tree(
    edges: list[tuple[str, str]],
    cascading: tuple[str, ...] = (),
    external_ids: dict[str, str] | None = None,
    alone: tuple[str, ...] = (),
) -> Tree:
    """A tree whose group ids are their displayNames."""
    names = {n for edge in edges for n in edge} | set(alone)
    external = external_ids or {}
    groups = {n: GroupInfo(n, n, external.get(n)) for n in names}
    graph = GroupGraph.build(((p, c, EdgeSource.FILE) for p, c in edges), cascading)
    return Tree("v1", TreeInputs(groups=groups), graph)


def linked(tree: Tree, *, except_: tuple[str, ...] = ()) -> dict[str, Link]:
    """Every group linked to the Coder group ``coder-<name>``."""
    return {g: Link(g, f"coder-{g}", g.lower()) for g in tree.inputs.groups if g not in except_}


def targets(tree: Tree, claim: ClaimAttribute = "displayName") -> dict[str, set[str]]:
    """The desired mapping as claim value → names of the Coder groups it grants."""
    mapping = desired_mapping(tree, linked(tree), claim).mapping
    return {key: {i.removeprefix("coder-") for i in ids} for key, ids in mapping.items()}


CASCADE_TREE = [
    ("Organization", "Engineering"),
    ("Engineering", "Java"),
    ("Engineering", "Python"),
    ("Java", "Spring"),
    ("Organization", "Template Admins"),
]


def test_chain_maps_each_group_to_itself_and_every_ancestor() -> None:
    tree = make_tree([("Organization", "Engineering"), ("Engineering", "Java")])
    assert targets(tree) == {
        "Organization": {"Organization"},
        "Engineering": {"Engineering", "Organization"},
        "Java": {"Java", "Engineering", "Organization"},
    }


def test_diamond_maps_a_group_to_both_parents_and_their_common_ancestor() -> None:
    tree = make_tree([("Top", "Left"), ("Top", "Right"), ("Left", "Shared"), ("Right", "Shared")])
    assert targets(tree)["Shared"] == {"Shared", "Left", "Right", "Top"}


def test_cascading_group_maps_to_every_descendant() -> None:
    tree = make_tree(CASCADE_TREE, cascading=("Engineering",))
    assert targets(tree)["Engineering"] == {
        "Engineering",
        "Organization",
        "Java",
        "Python",
        "Spring",
    }


def test_group_under_a_cascading_group_gets_no_siblings_or_children() -> None:
    tree = make_tree(CASCADE_TREE, cascading=("Engineering",))
    assert targets(tree)["Java"] == {"Java", "Engineering", "Organization"}


def test_mapping_grants_exactly_the_groups_whose_effective_members_include_the_group() -> None:
    """The inverse of the roll-up and cascade rules (graph.sources): what API mode gives."""
    tree = make_tree(CASCADE_TREE, cascading=("Engineering", "Java"))
    groups = tree.inputs.groups
    expected = {x: {g for g in groups if x in tree.graph.sources(g)} for x in groups}
    assert targets(tree) == expected


def test_external_id_claim_keys_the_mapping_by_external_id() -> None:
    tree = make_tree(
        [("Engineering", "Java")],
        external_ids={"Engineering": "0b8c-eng", "Java": "6c2a-java"},
    )
    assert targets(tree, "externalId") == {
        "0b8c-eng": {"Engineering"},
        "6c2a-java": {"Java", "Engineering"},
    }


def test_group_without_external_id_gets_no_key_and_a_warning() -> None:
    tree = make_tree([("Engineering", "Java")], external_ids={"Engineering": "0b8c-eng"})
    desired = desired_mapping(tree, linked(tree), "externalId")
    assert (set(desired.mapping), desired.without_claim) == ({"0b8c-eng"}, ["Java"])
    assert any("Java" in warning for warning in desired.warnings("externalId"))


def test_group_without_a_coder_group_is_left_out_of_every_list() -> None:
    tree = make_tree([("Engineering", "Java")])
    desired = desired_mapping(tree, linked(tree, except_=("Engineering",)), "displayName")
    assert desired.mapping == {"Engineering": [], "Java": ["coder-Java"]}
    assert desired.unlinked == ["Engineering"]


def test_groups_sharing_an_external_id_share_one_key_and_are_warned_about() -> None:
    tree = make_tree([], external_ids={"A": "same", "B": "same"}, alone=("A", "B"))
    desired = desired_mapping(tree, linked(tree), "externalId")
    assert desired.mapping == {"same": ["coder-A", "coder-B"]}
    assert desired.shared == {"same": ["A", "B"]}


def test_diff_adds_missing_and_removes_extra_ids_of_managed_keys() -> None:
    diff = mapping_diff({"Java": ["j", "e"]}, {"Java": ["j", "stale"]})
    assert (diff.add, diff.remove) == ([("Java", "e")], [("Java", "stale")])


def test_diff_never_touches_keys_the_bridge_does_not_manage() -> None:
    current = {"contractors": ["x"], "Java": ["j"], "okta-everyone": []}
    diff = mapping_diff({"Java": ["j"], "Python": ["p"]}, current)
    touched = {given for given, _ in diff.add + diff.remove}
    assert touched == {"Python"}


def test_diff_empties_a_stale_key_the_bridge_wrote_before() -> None:
    current = {"Java": ["e", "j"], "Java Guild": [], "contractors": ["x"]}
    diff = mapping_diff({"Java Guild": ["e", "j"]}, current, stale=["Java"])
    assert diff.remove == [("Java", "e"), ("Java", "j")]
    assert {given for given, _ in diff.add} == {"Java Guild"}


def test_diff_ignores_a_stale_key_that_is_wanted_again_or_already_empty() -> None:
    current = {"Java": ["j"], "Old": []}
    assert mapping_diff({"Java": ["j"]}, current, stale=["Java", "Old", "Gone"]).empty


def test_diff_of_a_matching_mapping_is_empty() -> None:
    assert mapping_diff({"Java": ["e", "j"]}, {"Java": ["j", "e"], "other": ["o"]}).empty


def test_diff_reads_a_null_mapping_and_null_lists_as_empty() -> None:
    no_mapping = mapping_diff({"Java": ["j"]}, None)
    null_list = mapping_diff({"Java": ["j"]}, {"Java": None})
    assert no_mapping.add == null_list.add == [("Java", "j")]


def test_exported_settings_have_the_shape_coder_cli_reads() -> None:
    assert group_sync_settings("groups", {"Java": ["j"]}) == {
        "field": "groups",
        "mapping": {"Java": ["j"]},
        "regex_filter": None,
        "auto_create_missing_groups": False,
    }


# -- the plan without members -------------------------------------------------------------

ORG = "org-1"


def _plan_without_members(coder_groups: list[CoderGroup]) -> Any:
    alice = ScimUserInfo("u1", "alice", "alice@example.com", None, True)
    return compute_plan(
        desired={
            "g-java": DesiredGroup("g-java", "Java", frozenset({"u1"})),
            "g-eng": DesiredGroup("g-eng", "Engineering", frozenset({"u1"})),
        },
        gone=[],
        links={"g-eng": Link("g-eng", "c-eng", "engineering")},
        coder_groups=coder_groups,
        users={"u1": alice},
        index=UserIndex(),
        organization_id=ORG,
        settings=PlanSettings(manage_members=False, create_missing_users=True),
    )


def test_plan_without_members_creates_groups_with_no_members_and_no_users() -> None:
    plan = _plan_without_members([CoderGroup(id="c-eng", name="engineering", organization_id=ORG)])
    created = [g for g in plan.groups if g.create]
    assert ([g.name for g in created], created[0].add, plan.user_creates, plan.pending) == (
        ["java"],
        [],
        [],
        {},
    )


def test_plan_without_members_leaves_existing_members_alone() -> None:
    someone = ReducedUser(id="c-user", username="someone")
    engineering = CoderGroup(
        id="c-eng",
        name="engineering",
        display_name="Engineering",
        organization_id=ORG,
        members=[someone],
    )
    plan = _plan_without_members([engineering])
    change = next(g for g in plan.groups if g.scim_id == "g-eng")
    assert (change.add, change.remove, change.changes) == ([], [], False)


# -- settings ---------------------------------------------------------------------------------


def test_mapping_claim_accepts_external_id_in_any_spelling() -> None:
    assert CoderSettings(mapping_claim="external_id").mapping_claim == "externalId"


def test_mapping_claim_refuses_an_attribute_that_is_not_sent_in_tokens() -> None:
    with pytest.raises(ValueError, match=r"displayName .* or externalId"):
        CoderSettings(mapping_claim="objectId")


def test_group_sync_field_must_name_a_claim() -> None:
    with pytest.raises(ValueError, match="turns Coder's group sync off"):
        CoderSettings(group_sync_field="")


# -- end to end over HTTP ------------------------------------------------------------------

HIERARCHY = """
version: 1
groups:
  - group: Organization
    children: [Engineering, Template Admins]
  - group: Engineering
    cascade: true
    children: [Java, Python]
"""
DIRECT = {
    "Organization": [],
    "Engineering": ["bob"],
    "Java": ["alice"],
    "Python": ["carol"],
    "Template Admins": ["dave"],
}
EXTERNAL_IDS = {
    "Organization": "00000000-0000-4000-8000-00000000000a",
    "Engineering": "00000000-0000-4000-8000-00000000000b",
    "Java": "00000000-0000-4000-8000-00000000000c",
    "Python": "00000000-0000-4000-8000-00000000000d",
    "Template Admins": "00000000-0000-4000-8000-00000000000e",
}
EFFECTIVE = {
    "organization": {"alice", "bob", "carol", "dave"},
    "engineering": {"alice", "bob", "carol"},
    "java": {"alice", "bob"},
    "python": {"bob", "carol"},
    "template-admins": {"dave"},
}
EXPECTED_MAPPING = {
    "Organization": {"organization"},
    "Engineering": {"engineering", "organization", "java", "python"},
    "Java": {"java", "engineering", "organization"},
    "Python": {"python", "engineering", "organization"},
    "Template Admins": {"template-admins", "organization"},
}
PEOPLE = ["alice", "bob", "carol", "dave"]


@pytest.fixture
def double() -> Iterator[LiveCoder]:
    """The Coder double with OIDC users alice, bob, carol, dave and group sync on ("groups")."""
    with run_coder_double(DoubleConfig(rate_limit=0)) as live:
        for name in PEOPLE:
            live.state.create_user(name, f"{name}@example.com")
        live.state.set_group_sync(live.state.default_org, GroupSyncSettings(field="groups"))
        yield live


def start_bridge(
    database_url: str, coder: LiveCoder, tmp_path: Path, claim: ClaimAttribute = "displayName"
) -> Any:
    hierarchy = tmp_path / "hierarchy.yaml"
    hierarchy.write_text(HIERARCHY)
    settings = Settings(
        database_url=database_url,
        hierarchy=HierarchySettings(file=str(hierarchy)),
        coder=CoderSettings(
            url=coder.url,
            token=coder.token,
            mode="mapping",
            mapping_claim=claim,
            debounce_seconds=0.05,
            resync_interval_seconds=0,
            rate_limit_per_minute=0,
        ),
    )
    token = asyncio.run(create_token(database_url, "tests"))
    admin = asyncio.run(create_token(database_url, "ops", "admin"))
    return run_server(settings, token), admin


@pytest.fixture
def bridge(database_url: str, double: LiveCoder, tmp_path: Path) -> Iterator[LiveServer]:
    server, admin = start_bridge(database_url, double, tmp_path)
    with server as live:
        yield replace(live, admin_token=admin)


def provision(server: LiveServer, *, external_ids: bool = False) -> None:
    """Okta style: users, then flat groups with user members only (the tree is the file's)."""
    with scim_client(server) as scim:
        ids = {}
        for name in PEOPLE:
            body = {
                "schemas": [USER],
                "userName": name,
                "emails": [{"value": f"{name}@example.com"}],
            }
            ids[name] = scim.post("/Users", json=body).json()["id"]
        for group, members in DIRECT.items():
            body = {
                "schemas": [GROUP],
                "displayName": group,
                "members": [{"value": ids[m]} for m in members],
            }
            if external_ids:
                body["externalId"] = EXTERNAL_IDS[group]
            assert scim.post("/Groups", json=body).status_code == 201


def mapping_names(coder: LiveCoder) -> dict[str, set[str]]:
    """Coder's group-sync mapping with group names for ids."""
    names = {str(g.id): name for name, g in coder.state.groups_named().items()}
    stored = coder.state.group_sync[coder.state.default_org.id].mapping or {}
    return {key: {names.get(i, i) for i in ids or []} for key, ids in stored.items()}


def by_external_id(mapping: dict[str, set[str]]) -> dict[str, set[str]]:
    return {EXTERNAL_IDS[name]: groups for name, groups in mapping.items()}


def log_everyone_in(coder: LiveCoder, claim_values: dict[str, str]) -> None:
    """Each user logs in with a token carrying their direct groups, as Okta sends them."""
    for person in PEOPLE:
        direct = [claim_values[g] for g, members in DIRECT.items() if person in members]
        coder.state.login(person, {"groups": direct})


def bridge_effective(server: LiveServer) -> dict[str, set[str]]:
    """The bridge's effective members per group: what API mode writes into Coder."""
    with httpx.Client(
        base_url=f"{server.url}/admin/api",
        headers={"Authorization": f"Bearer {server.admin_token}"},
    ) as admin:
        found = {}
        for group in DIRECT:
            view = admin.get(f"/groups/{group}").json()
            slug = group.lower().replace(" ", "-")
            found[slug] = {m["userName"] for m in view["effectiveMembers"]["Resources"]}
        return found


def test_users_logging_in_land_in_the_groups_api_mode_gives_them(
    bridge: LiveServer, double: LiveCoder
) -> None:
    provision(bridge)
    eventually(lambda: assert_equal(mapping_names(double), EXPECTED_MAPPING))
    log_everyone_in(double, {g: g for g in DIRECT})
    assert coder_groups(double) == EFFECTIVE == bridge_effective(bridge)


def test_external_id_claims_land_users_in_the_same_groups(
    database_url: str, double: LiveCoder, tmp_path: Path
) -> None:
    """Entra style: tokens carry group object ids, provisioned as the groups' externalId."""
    server, _ = start_bridge(database_url, double, tmp_path, claim="externalId")
    with server as live:
        provision(live, external_ids=True)
        expected = by_external_id(EXPECTED_MAPPING)
        eventually(lambda: assert_equal(mapping_names(double), expected))
    log_everyone_in(double, EXTERNAL_IDS)
    assert coder_groups(double) == EFFECTIVE


def test_mapping_mode_adds_no_members_itself(bridge: LiveServer, double: LiveCoder) -> None:
    provision(bridge)
    eventually(lambda: assert_equal(mapping_names(double), EXPECTED_MAPPING))
    assert coder_groups(double) == {name: set() for name in EFFECTIVE}


def test_keys_the_bridge_does_not_manage_survive(
    database_url: str, double: LiveCoder, tmp_path: Path
) -> None:
    org = double.state.default_org
    designers = double.state.create_group(org, "designers")
    hand_made = {"contractors": [str(designers.id)], "okta-all": [str(org.id)]}
    double.state.set_group_sync(org, GroupSyncSettings(field="groups", mapping=hand_made))
    server, _ = start_bridge(database_url, double, tmp_path)
    with server as live:
        provision(live)
        eventually(lambda: assert_equal(mapping_names(double).keys(), {*DIRECT, *hand_made}))
    stored = double.state.group_sync[org.id].mapping or {}
    assert {key: stored[key] for key in hand_made} == hand_made


def _patch_group(server: LiveServer, name: str, operation: dict[str, Any] | None) -> None:
    """Rename (``operation``) or delete (None) the SCIM group ``name``."""
    with scim_client(server) as scim:
        found = scim.get("/Groups", params={"filter": f'displayName eq "{name}"'}).json()
        group_id = found["Resources"][0]["id"]
        if operation is None:
            assert scim.delete(f"/Groups/{group_id}").status_code == 204
            return
        body = {"schemas": [PATCH], "Operations": [operation]}
        assert scim.patch(f"/Groups/{group_id}", json=body).status_code == 200


def test_key_of_a_renamed_group_is_emptied(bridge: LiveServer, double: LiveCoder) -> None:
    provision(bridge)
    eventually(lambda: assert_equal(mapping_names(double), EXPECTED_MAPPING))
    rename = {"op": "replace", "path": "displayName", "value": "Java Guild"}
    _patch_group(bridge, "Java", rename)

    def renamed() -> None:
        mapping = mapping_names(double)
        assert mapping["Java"] == set()  # the old name grants nothing any more
        assert "java-guild" in mapping["Java Guild"]

    eventually(renamed)


def test_key_of_a_deleted_group_no_longer_grants_its_ancestors(
    bridge: LiveServer, double: LiveCoder
) -> None:
    provision(bridge)
    eventually(lambda: assert_equal(mapping_names(double), EXPECTED_MAPPING))
    _patch_group(bridge, "Python", None)
    expected = {**EXPECTED_MAPPING, "Python": set()}
    expected["Engineering"] = {"engineering", "organization", "java"}
    eventually(lambda: assert_equal(mapping_names(double), expected))
    double.state.login("carol", {"groups": ["Python"]})  # the IdP still sends it
    engineering = double.state.groups_named()["engineering"]
    assert "carol" not in double.state.member_usernames(engineering)


def test_empty_group_sync_field_is_warned_about_and_the_mapping_still_written(
    database_url: str, double: LiveCoder, tmp_path: Path
) -> None:
    double.state.set_group_sync(double.state.default_org, GroupSyncSettings(field=""))
    server, admin = start_bridge(database_url, double, tmp_path)
    with server as live:
        provision(live)
        eventually(lambda: assert_equal(mapping_names(double), EXPECTED_MAPPING))
        report = full_sync(replace(live, admin_token=admin))
    assert report["failures"] == []
    assert any("never apply the mapping" in warning for warning in report["warnings"])


def test_resync_of_a_written_mapping_makes_no_write_calls(
    bridge: LiveServer, double: LiveCoder
) -> None:
    provision(bridge)
    eventually(lambda: assert_equal(mapping_names(double), EXPECTED_MAPPING))
    full_sync(bridge)  # settles whatever the journal still held
    writes_before = double.state.calls.write_count()
    report = full_sync(bridge)
    assert (report["failures"], double.state.calls.write_count()) == ([], writes_before)


# -- export-mapping -------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str) -> Path:
    """The CLI's environment: only the test database configured, in a directory of its own."""
    for name in ("SCIM_BRIDGE_CONFIG", "TEST_POSTGRES_URL"):
        monkeypatch.delenv(name, raising=False)
    workdir = tmp_path / "cli"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("SCIM_BRIDGE_DATABASE_URL", database_url)
    return workdir


def test_export_writes_the_mapping_the_bridge_keeps_in_coder(
    bridge: LiveServer, double: LiveCoder, cli_env: Path
) -> None:
    provision(bridge)
    eventually(lambda: assert_equal(mapping_names(double), EXPECTED_MAPPING))
    output = cli_env / "group-sync.json"
    assert main(["export-mapping", "--output", str(output)]) == 0
    stored = double.state.group_sync[double.state.default_org.id].mapping or {}
    assert json.loads(output.read_text()) == {
        "field": "groups",
        "mapping": {key: sorted(ids or []) for key, ids in stored.items()},
        "regex_filter": None,
        "auto_create_missing_groups": False,
    }


def _provision_without_coder(database_url: str, tmp_path: Path) -> None:
    """The organisation in the database, with no Coder configured (so no links)."""
    hierarchy = tmp_path / "hierarchy.yaml"
    hierarchy.write_text(HIERARCHY)
    settings = Settings(database_url=database_url, hierarchy=HierarchySettings(file=str(hierarchy)))
    with run_server(settings, asyncio.run(create_token(database_url, "tests"))) as server:
        provision(server)


def test_export_without_links_or_coder_says_to_let_the_bridge_create_the_groups(
    database_url: str, cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _provision_without_coder(database_url, tmp_path)
    assert main(["export-mapping"]) == 1
    error = capsys.readouterr().err
    assert "no Coder group id in the database" in error and "coder.mode: mapping" in error


def test_export_without_links_looks_the_groups_up_in_coder_and_says_so(
    database_url: str,
    double: LiveCoder,
    cli_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _provision_without_coder(database_url, tmp_path)
    for name in EFFECTIVE:
        double.state.create_group(double.state.default_org, name)
    monkeypatch.setenv("SCIM_BRIDGE_CODER__URL", double.url)
    monkeypatch.setenv("SCIM_BRIDGE_CODER__TOKEN", double.token)
    assert main(["export-mapping"]) == 0
    out, err = capsys.readouterr()
    names = {str(g.id): name for name, g in double.state.groups_named().items()}
    exported = json.loads(out)["mapping"]
    assert {key: {names[i] for i in ids} for key, ids in exported.items()} == EXPECTED_MAPPING
    assert "looked up in Coder" in err
