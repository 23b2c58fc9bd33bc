"""API mode end to end: SCIM provisioning plus the tree end in exactly the expected Coder groups.

The bridge and the Coder double both run over real HTTP on 127.0.0.1; the bridge's background
worker does the syncing, as in production.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import httpx
import pytest

from scim_bridge.coderdouble.models import GroupSyncSettings
from scim_bridge.config import Settings
from tests.coder_fixtures import (
    LiveCoder,
    assert_equal,
    coder_settings,
    eventually,
    full_sync,
    pending_changes,
)
from tests.conftest import PEOPLE
from tests.server import LiveServer, create_token, run_server

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


@pytest.fixture
def bridge(database_url: str, coder: LiveCoder) -> Iterator[LiveServer]:
    settings = Settings(
        database_url=database_url,
        coder=coder_settings(coder),
    )
    token = asyncio.run(create_token(database_url, "tests"))
    admin = asyncio.run(create_token(database_url, "ops", "admin"))
    with run_server(settings, token) as server:
        yield replace(server, admin_token=admin)


def scim_client(server: LiveServer) -> httpx.Client:
    return httpx.Client(
        base_url=server.scim_url,
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )


def provision(server: LiveServer) -> dict[str, str]:
    """Okta style: users, then groups with user members; Java nested in Engineering."""
    ids: dict[str, str] = {}
    with scim_client(server) as scim:
        for name in PEOPLE:
            body = {
                "schemas": [USER],
                "userName": name,
                "emails": [{"value": f"{name.upper()}@example.com", "primary": True}],
            }
            ids[name] = scim.post("/Users", json=body).json()["id"]
        java = {"schemas": [GROUP], "displayName": "Java", "members": [{"value": ids["alice"]}]}
        ids["Java"] = scim.post("/Groups", json=java).json()["id"]
        engineering = {
            "schemas": [GROUP],
            "displayName": "Engineering",
            "members": [{"value": ids["bob"]}, {"value": ids["Java"]}],
        }
        ids["Engineering"] = scim.post("/Groups", json=engineering).json()["id"]
    return ids


def coder_groups(coder: LiveCoder) -> dict[str, set[str]]:
    """Coder's groups (but Everyone) and their members' usernames."""
    return {
        name: coder.state.member_usernames(group)
        for name, group in coder.state.groups_named().items()
        if name != "Everyone"
    }


EXPECTED = {"java": {"alice"}, "engineering": {"alice", "bob"}}


def test_provisioned_tree_ends_in_exactly_the_expected_coder_groups(
    bridge: LiveServer, coder: LiveCoder
) -> None:
    provision(bridge)

    def synced() -> None:
        assert coder_groups(coder) == EXPECTED

    eventually(synced)
    display = {g.name: g.display_name for g in coder.state.groups_named().values()}
    assert display["engineering"] == "Engineering"


def test_member_add_deep_in_the_tree_reaches_every_ancestor(
    bridge: LiveServer, coder: LiveCoder
) -> None:
    ids = provision(bridge)
    eventually(lambda: assert_equal(coder_groups(coder), EXPECTED))
    with scim_client(bridge) as scim:
        scim.patch(
            f"/Groups/{ids['Java']}",
            json={
                "schemas": [PATCH],
                "Operations": [
                    {"op": "add", "path": "members", "value": [{"value": ids["carol"]}]}
                ],
            },
        )
    expected = {"java": {"alice", "carol"}, "engineering": {"alice", "bob", "carol"}}
    eventually(lambda: assert_equal(coder_groups(coder), expected))


def test_deactivated_user_leaves_every_managed_group(bridge: LiveServer, coder: LiveCoder) -> None:
    ids = provision(bridge)
    eventually(lambda: assert_equal(coder_groups(coder), EXPECTED))
    with scim_client(bridge) as scim:
        scim.patch(
            f"/Users/{ids['alice']}",
            json={
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "value": {"active": False}}],
            },
        )
    eventually(lambda: assert_equal(coder_groups(coder), {"java": set(), "engineering": {"bob"}}))


def test_rename_and_delete_follow_the_scim_group(bridge: LiveServer, coder: LiveCoder) -> None:
    ids = provision(bridge)
    eventually(lambda: assert_equal(coder_groups(coder), EXPECTED))
    with scim_client(bridge) as scim:
        scim.patch(
            f"/Groups/{ids['Java']}",
            json={
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Java Guild"}],
            },
        )
    renamed = {"java-guild": {"alice"}, "engineering": {"alice", "bob"}}
    eventually(lambda: assert_equal(coder_groups(coder), renamed))
    with scim_client(bridge) as scim:
        scim.delete(f"/Groups/{ids['Java']}")
    eventually(lambda: assert_equal(coder_groups(coder), {"engineering": {"bob"}}))


def test_groups_the_bridge_does_not_own_are_left_alone(
    bridge: LiveServer, coder: LiveCoder
) -> None:
    hand_made = coder.state.create_group(coder.state.default_org, "designers")
    coder.state.add_group_members(hand_made, [coder.state.user("dave")])
    provision(bridge)
    eventually(lambda: assert_equal(coder_groups(coder), {**EXPECTED, "designers": {"dave"}}))


def test_no_op_resync_makes_zero_write_calls(bridge: LiveServer, coder: LiveCoder) -> None:
    provision(bridge)
    eventually(lambda: assert_equal(coder_groups(coder), EXPECTED))
    eventually(lambda: assert_equal(pending_changes(bridge), 0))
    writes_before = coder.state.calls.write_count()
    report = full_sync(bridge)
    assert report["failures"] == []
    assert coder.state.calls.write_count() == writes_before


def test_drift_made_by_hand_in_coder_is_corrected(bridge: LiveServer, coder: LiveCoder) -> None:
    provision(bridge)
    eventually(lambda: assert_equal(coder_groups(coder), EXPECTED))
    engineering = coder.state.groups_named()["engineering"]
    coder.state.remove_group_members(engineering, [coder.state.user("bob")])
    coder.state.add_group_members(engineering, [coder.state.user("dave")])
    eventually(lambda: assert_equal(pending_changes(bridge), 0))
    report = full_sync(bridge)
    assert report["failures"] == []
    assert coder_groups(coder) == EXPECTED
    assert "  - engineering: remove dave" in report["drift"]


def test_final_state_is_exact_despite_failing_writes(bridge: LiveServer, coder: LiveCoder) -> None:
    coder.state.faults.configure(failure_rate=0.3, seed=7)
    provision(bridge)
    eventually(lambda: assert_equal(coder_groups(coder), EXPECTED), timeout=60)
    assert coder.state.faults.injected, "no fault was injected: the test proves nothing"


def test_api_mode_refuses_an_organization_with_group_sync(
    bridge: LiveServer, coder: LiveCoder
) -> None:
    coder.state.set_group_sync(coder.state.default_org, GroupSyncSettings(field="groups"))
    provision(bridge)
    report = full_sync(bridge)
    assert any("IdP group sync enabled" in failure for failure in report["failures"])
    assert coder_groups(coder) == {}


ORG_GROUPS = "/api/v2/organizations/{organization}/groups"


def _add_member(server: LiveServer, group_id: str, user_id: str) -> None:
    operation = {"op": "add", "path": "members", "value": [{"value": user_id}]}
    with scim_client(server) as scim:
        body = {"schemas": [PATCH], "Operations": [operation]}
        assert scim.patch(f"/Groups/{group_id}", json=body).status_code == 200


def test_member_add_reads_only_the_groups_it_touches(bridge: LiveServer, coder: LiveCoder) -> None:
    ids = provision(bridge)
    eventually(lambda: assert_equal(coder_groups(coder), EXPECTED))
    eventually(lambda: assert_equal(pending_changes(bridge), 0))
    every_group_reads = coder.state.calls.count("GET", ORG_GROUPS)
    scoped_reads = coder.state.calls.count("GET", "/api/v2/groups")
    _add_member(bridge, ids["Java"], ids["carol"])
    expected = {"java": {"alice", "carol"}, "engineering": {"alice", "bob", "carol"}}
    eventually(lambda: assert_equal(coder_groups(coder), expected))
    assert coder.state.calls.count("GET", ORG_GROUPS) == every_group_reads
    assert coder.state.calls.count("GET", "/api/v2/groups") == scoped_reads + 1


def test_group_deleted_by_hand_in_coder_is_made_again_by_the_next_change(
    bridge: LiveServer, coder: LiveCoder
) -> None:
    ids = provision(bridge)
    eventually(lambda: assert_equal(coder_groups(coder), EXPECTED))
    eventually(lambda: assert_equal(pending_changes(bridge), 0))
    coder.state.delete_group(coder.state.groups_named()["java"])
    _add_member(bridge, ids["Java"], ids["carol"])
    expected = {"java": {"alice", "carol"}, "engineering": {"alice", "bob", "carol"}}
    eventually(lambda: assert_equal(coder_groups(coder), expected))
