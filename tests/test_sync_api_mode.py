"""API mode end to end: SCIM provisioning plus the tree end in exactly the expected Coder groups.

The bridge and the Coder double both run over real HTTP on 127.0.0.1; the bridge's background
worker does the syncing, as in production.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from scim_bridge.coderdouble.config import DoubleConfig
from scim_bridge.coderdouble.models import GroupSyncSettings
from scim_bridge.config import HierarchySettings, Settings
from tests.coder_fixtures import LiveCoder, coder_settings, run_coder_double
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


def eventually(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll until ``check`` stops raising AssertionError (the worker syncs in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


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
    eventually(lambda: _assert_equal(coder_groups(coder), EXPECTED))
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
    eventually(lambda: _assert_equal(coder_groups(coder), expected))


def test_deactivated_user_leaves_every_managed_group(bridge: LiveServer, coder: LiveCoder) -> None:
    ids = provision(bridge)
    eventually(lambda: _assert_equal(coder_groups(coder), EXPECTED))
    with scim_client(bridge) as scim:
        scim.patch(
            f"/Users/{ids['alice']}",
            json={
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "value": {"active": False}}],
            },
        )
    eventually(lambda: _assert_equal(coder_groups(coder), {"java": set(), "engineering": {"bob"}}))


def test_rename_and_delete_follow_the_scim_group(bridge: LiveServer, coder: LiveCoder) -> None:
    ids = provision(bridge)
    eventually(lambda: _assert_equal(coder_groups(coder), EXPECTED))
    with scim_client(bridge) as scim:
        scim.patch(
            f"/Groups/{ids['Java']}",
            json={
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "path": "displayName", "value": "Java Guild"}],
            },
        )
    renamed = {"java-guild": {"alice"}, "engineering": {"alice", "bob"}}
    eventually(lambda: _assert_equal(coder_groups(coder), renamed))
    with scim_client(bridge) as scim:
        scim.delete(f"/Groups/{ids['Java']}")
    eventually(lambda: _assert_equal(coder_groups(coder), {"engineering": {"bob"}}))


def test_groups_the_bridge_does_not_own_are_left_alone(
    bridge: LiveServer, coder: LiveCoder
) -> None:
    hand_made = coder.state.create_group(coder.state.default_org, "designers")
    coder.state.add_group_members(hand_made, [coder.state.user("dave")])
    provision(bridge)
    eventually(lambda: _assert_equal(coder_groups(coder), {**EXPECTED, "designers": {"dave"}}))


def test_no_op_resync_makes_zero_write_calls(bridge: LiveServer, coder: LiveCoder) -> None:
    provision(bridge)
    eventually(lambda: _assert_equal(coder_groups(coder), EXPECTED))
    eventually(lambda: _assert_equal(_pending(bridge), 0))
    writes_before = coder.state.calls.write_count()
    report = _full_sync(bridge)
    assert report["failures"] == []
    assert coder.state.calls.write_count() == writes_before


def test_drift_made_by_hand_in_coder_is_corrected(bridge: LiveServer, coder: LiveCoder) -> None:
    provision(bridge)
    eventually(lambda: _assert_equal(coder_groups(coder), EXPECTED))
    engineering = coder.state.groups_named()["engineering"]
    coder.state.remove_group_members(engineering, [coder.state.user("bob")])
    coder.state.add_group_members(engineering, [coder.state.user("dave")])
    eventually(lambda: _assert_equal(_pending(bridge), 0))
    report = _full_sync(bridge)
    assert report["failures"] == []
    assert coder_groups(coder) == EXPECTED
    assert "  - engineering: remove dave" in report["drift"]


def test_final_state_is_exact_despite_failing_writes(bridge: LiveServer, coder: LiveCoder) -> None:
    coder.state.faults.configure(failure_rate=0.3, seed=7)
    provision(bridge)
    eventually(lambda: _assert_equal(coder_groups(coder), EXPECTED), timeout=60)
    assert coder.state.faults.injected, "no fault was injected: the test proves nothing"


def test_api_mode_refuses_an_organization_with_group_sync(
    bridge: LiveServer, coder: LiveCoder
) -> None:
    coder.state.set_group_sync(coder.state.default_org, GroupSyncSettings(field="groups"))
    provision(bridge)
    report = _full_sync(bridge)
    assert any("IdP group sync enabled" in failure for failure in report["failures"])
    assert coder_groups(coder) == {}


def _assert_equal(actual: Any, expected: Any) -> None:
    assert actual == expected


def _admin(bridge: LiveServer) -> httpx.Client:
    token = bridge.admin_token
    return httpx.Client(
        base_url=f"{bridge.url}/admin/api", headers={"Authorization": f"Bearer {token}"}
    )


def _pending(bridge: LiveServer) -> int:
    with _admin(bridge) as admin:
        return int(admin.get("/sync").json()["pending_changes"])


def _full_sync(bridge: LiveServer) -> dict[str, Any]:
    """Ask for a full resync and wait for its report."""
    with _admin(bridge) as admin:
        before = admin.get("/sync").json()["last_runs"].get("full", {}).get("finished")
        assert admin.post("/sync").status_code == 202

        def finished() -> dict[str, Any]:
            run = admin.get("/sync").json()["last_runs"].get("full", {})
            assert run.get("finished") and run.get("finished") != before
            return dict(run)

        return dict(eventually(finished))


def test_rate_limited_coder_still_ends_exact(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Coder answers 429 past 3 calls per second per endpoint (contract §1.4, a short window
    so the test is quick); the bridge, its own pacing off, retries and converges."""
    with run_coder_double(DoubleConfig(rate_limit=3, rate_limit_window=1.0)) as coder:
        for name in PEOPLE:
            coder.state.create_user(name, f"{name}@example.com")
        settings = Settings(
            database_url=database_url,
            coder=coder_settings(coder),
        )
        token = asyncio.run(create_token(database_url, "tests"))
        with run_server(settings, token) as server:
            provision(server)
            eventually(lambda: _assert_equal(coder_groups(coder), EXPECTED), timeout=60)
    rate_limited = [r for r in caplog.records if "Coder answered 429" in r.getMessage()]
    assert rate_limited, "Coder never rate-limited the bridge: the test proves nothing"


def test_hierarchy_file_tree_reaches_coder(
    database_url: str, coder: LiveCoder, tmp_path: Path
) -> None:
    """Okta-style flat groups plus a hierarchy file: Coder groups get the inherited members."""
    hierarchy = tmp_path / "hierarchy.yaml"
    hierarchy.write_text(
        "version: 1\ngroups:\n  - group: Engineering\n    children: [Java, Python]\n"
    )
    settings = Settings(
        database_url=database_url,
        hierarchy=HierarchySettings(file=str(hierarchy)),
        coder=coder_settings(coder),
    )
    token = asyncio.run(create_token(database_url, "tests"))
    with run_server(settings, token) as server, scim_client(server) as scim:
        ids = {}
        for name in PEOPLE:
            body = {
                "schemas": [USER],
                "userName": name,
                "emails": [{"value": f"{name}@example.com"}],
            }
            ids[name] = scim.post("/Users", json=body).json()["id"]
        flat = (("Engineering", ["dave"]), ("Java", ["alice"]), ("Python", ["bob"]))
        for group, members in flat:
            body = {
                "schemas": [GROUP],
                "displayName": group,
                "members": [{"value": ids[m]} for m in members],
            }
            scim.post("/Groups", json=body)
        expected = {"engineering": {"alice", "bob", "dave"}, "java": {"alice"}, "python": {"bob"}}
        eventually(lambda: _assert_equal(coder_groups(coder), expected))


@pytest.fixture
def bridge_with(database_url: str, coder: LiveCoder) -> Iterator[Callable[..., LiveServer]]:
    """Start the bridge with some Coder settings changed (one server per test)."""
    with ExitStack() as stack:

        def start(**overrides: Any) -> LiveServer:
            settings = Settings(database_url=database_url, coder=coder_settings(coder, **overrides))
            token = asyncio.run(create_token(database_url, "tests"))
            return stack.enter_context(run_server(settings, token))

        yield start


def _post_user(scim: httpx.Client, name: str, email: str) -> str:
    body = {"schemas": [USER], "userName": name, "emails": [{"value": email}]}
    return str(scim.post("/Users", json=body).json()["id"])


def _post_group(scim: httpx.Client, name: str, members: list[str]) -> str:
    body = {"schemas": [GROUP], "displayName": name, "members": [{"value": m} for m in members]}
    return str(scim.post("/Groups", json=body).json()["id"])


def test_missing_coder_users_are_created_when_configured(
    bridge_with: Callable[..., LiveServer], coder: LiveCoder
) -> None:
    server = bridge_with(create_missing_users=True)
    with scim_client(server) as scim:
        erin = _post_user(scim, "erin", "erin@example.com")
        _post_group(scim, "Java", [erin])
    eventually(lambda: _assert_equal(coder_groups(coder), {"java": {"erin"}}))
    assert coder.state.user("erin").login_type == "oidc"


def test_missing_coder_users_stay_pending_by_default(
    bridge_with: Callable[..., LiveServer], coder: LiveCoder
) -> None:
    server = bridge_with()
    with scim_client(server) as scim:
        erin = _post_user(scim, "erin", "erin@example.com")
        alice = _post_user(scim, "alice", "alice@example.com")
        _post_group(scim, "Java", [erin, alice])
    eventually(lambda: _assert_equal(coder_groups(coder), {"java": {"alice"}}))
    assert coder.state.find_user("erin") is None


def test_deactivated_user_is_suspended_when_configured(
    bridge_with: Callable[..., LiveServer], coder: LiveCoder
) -> None:
    server = bridge_with(suspend_deactivated_users=True)
    with scim_client(server) as scim:
        alice = _post_user(scim, "alice", "alice@example.com")
        _post_group(scim, "Java", [alice])
        eventually(lambda: _assert_equal(coder_groups(coder), {"java": {"alice"}}))
        scim.patch(
            f"/Users/{alice}",
            json={
                "schemas": [PATCH],
                "Operations": [{"op": "replace", "value": {"active": False}}],
            },
        )
    eventually(lambda: _assert_equal(coder.state.user("alice").status, "suspended"))
    assert coder_groups(coder) == {"java": set()}


def test_users_can_be_matched_by_username(
    bridge_with: Callable[..., LiveServer], coder: LiveCoder
) -> None:
    server = bridge_with(match_users_by="username")
    with scim_client(server) as scim:
        alice = _post_user(scim, "alice", "someone-else@example.org")
        _post_group(scim, "Java", [alice])
    eventually(lambda: _assert_equal(coder_groups(coder), {"java": {"alice"}}))


def test_adopted_group_is_taken_over_not_duplicated(
    bridge_with: Callable[..., LiveServer], coder: LiveCoder
) -> None:
    existing = coder.state.create_group(coder.state.default_org, "java")
    coder.state.add_group_members(existing, [coder.state.user("dave")])
    server = bridge_with(adopt_groups=["Java"])
    with scim_client(server) as scim:
        alice = _post_user(scim, "alice", "alice@example.com")
        _post_group(scim, "Java", [alice])
    eventually(lambda: _assert_equal(coder_groups(coder), {"java": {"alice"}}))


def test_name_collision_with_a_hand_made_group_gets_a_suffix(
    bridge_with: Callable[..., LiveServer], coder: LiveCoder
) -> None:
    hand_made = coder.state.create_group(coder.state.default_org, "java")
    coder.state.add_group_members(hand_made, [coder.state.user("dave")])
    server = bridge_with()
    with scim_client(server) as scim:
        alice = _post_user(scim, "alice", "alice@example.com")
        _post_group(scim, "Java", [alice])
    eventually(lambda: _assert_equal(coder_groups(coder), {"java": {"dave"}, "java-2": {"alice"}}))
