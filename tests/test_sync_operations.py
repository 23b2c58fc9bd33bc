"""Operating the Coder sync: the failsafe, `plan` and `sync` commands, several replicas, and a
bridge killed mid-sync."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from scim_bridge.cli import main
from scim_bridge.config import Settings
from scim_bridge.store.db import Database
from scim_bridge.sync.engine import SyncEngine, build_engine
from tests.coder_fixtures import LiveCoder, assert_equal, coder_settings, eventually
from tests.conftest import PEOPLE
from tests.server import create_token, free_port, run_server
from tests.test_sync_api_mode import EXPECTED, coder_groups, provision, scim_client

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def cli_environment(monkeypatch: pytest.MonkeyPatch, database_url: str, coder: LiveCoder) -> None:
    monkeypatch.setenv("SCIM_BRIDGE_DATABASE_URL", database_url)
    monkeypatch.setenv("SCIM_BRIDGE_CODER__URL", coder.url)
    monkeypatch.setenv("SCIM_BRIDGE_CODER__TOKEN", coder.token)
    monkeypatch.setenv("SCIM_BRIDGE_CODER__RATE_LIMIT_PER_MINUTE", "0")


def test_failsafe_holds_a_sync_that_empties_a_large_group_until_approved(
    database_url: str,
    coder: LiveCoder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = Settings(
        database_url=database_url,
        coder=coder_settings(coder, failsafe_min_group_size=2, failsafe_max_removal_share=0.5),
    )
    token = asyncio.run(create_token(database_url, "tests"))
    with run_server(settings, token) as server:
        ids = provision(server)
        eventually(lambda: assert_equal(coder_groups(coder), EXPECTED))
        with scim_client(server) as scim:
            for name in ("alice", "bob"):
                scim.delete(f"/Users/{ids[name]}")
        time.sleep(0.5)  # the worker runs, and holds
        assert coder_groups(coder) == EXPECTED
    cli_environment(monkeypatch, database_url, coder)
    monkeypatch.setenv("SCIM_BRIDGE_CODER__FAILSAFE_MIN_GROUP_SIZE", "2")
    capsys.readouterr()
    assert main(["sync"]) == 1
    assert "held by the failsafe" in capsys.readouterr().out
    assert coder_groups(coder) == EXPECTED
    assert main(["sync", "--approve"]) == 0
    assert coder_groups(coder) == {"java": set(), "engineering": set()}


def test_plan_prints_the_changes_and_applies_nothing(
    database_url: str,
    coder: LiveCoder,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = asyncio.run(create_token(database_url, "tests"))
    with run_server(Settings(database_url=database_url), token) as server:  # no Coder: no sync
        provision(server)
    cli_environment(monkeypatch, database_url, coder)
    capsys.readouterr()
    assert main(["plan"]) == 0
    printed = capsys.readouterr().out
    assert "+ create group engineering (Engineering)" in printed
    assert "  + java: add alice" in printed
    assert coder_groups(coder) == {}
    assert main(["sync"]) == 0
    assert coder_groups(coder) == EXPECTED
    capsys.readouterr()
    assert main(["plan"]) == 0
    assert "nothing to change" in capsys.readouterr().out


def test_two_replicas_on_one_database_sync_without_conflict(
    database_url: str,
    coder: LiveCoder,
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("several replicas share PostgreSQL; SQLite is a single-node database")
    settings = Settings(database_url=database_url, coder=coder_settings(coder))
    token = asyncio.run(create_token(database_url, "tests"))
    with run_server(settings, token) as first, run_server(settings, token) as second:
        ids = provision(first)
        with scim_client(second) as scim:
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
    assert set(coder_groups(coder)) == {"java", "engineering"}  # no duplicate like java-2


@pytest.fixture
def bridge_process(
    database_url: str,
    coder: LiveCoder,
) -> Iterator[tuple[list[str], dict[str, str], str]]:
    """How to start `scim-bridge serve` as a real process against the double."""
    port = free_port()
    environment = {
        **os.environ,
        "SCIM_BRIDGE_DATABASE_URL": database_url,
        "SCIM_BRIDGE_PORT": str(port),
        "SCIM_BRIDGE_CODER__URL": coder.url,
        "SCIM_BRIDGE_CODER__TOKEN": coder.token,
        "SCIM_BRIDGE_CODER__DEBOUNCE_SECONDS": "0.05",
        "SCIM_BRIDGE_CODER__RATE_LIMIT_PER_MINUTE": "0",
        "SCIM_BRIDGE_CODER__LEASE_SECONDS": "5",
    }
    command = [sys.executable, "-m", "scim_bridge.cli", "serve"]
    yield command, environment, f"http://127.0.0.1:{port}"


def _start(command: list[str], environment: dict[str, str], url: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("scim-bridge serve did not start")


def test_bridge_killed_mid_sync_converges_after_restart(
    database_url: str,
    coder: LiveCoder,
    bridge_process: tuple[list[str], dict[str, str], str],
) -> None:
    command, environment, url = bridge_process
    token = asyncio.run(create_token(database_url, "tests"))
    coder.state.faults.configure(latency=0.2)  # every Coder call takes a while
    process = _start(command, environment, url)
    try:
        with httpx.Client(
            base_url=f"{url}/scim/v2", headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as scim:
            ids = {}
            for name in PEOPLE:
                body = {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "userName": name,
                    "emails": [{"value": f"{name}@example.com"}],
                }
                ids[name] = scim.post("/Users", json=body).json()["id"]
            group = {
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                "displayName": "Java",
                "members": [{"value": ids[name]} for name in PEOPLE],
            }
            assert scim.post("/Groups", json=group).status_code == 201
        deadline = time.monotonic() + 30
        while coder.state.calls.write_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.02)  # the sync has started writing
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        coder.state.faults.clear()
        process = _start(command, environment, url)
        eventually(lambda: assert_equal(coder_groups(coder), {"java": set(PEOPLE)}), timeout=60)
    finally:
        process.kill()
        process.wait(timeout=10)


# -- the sync lease ---------------------------------------------------------------------------


def _engine(database: Any, coder: LiveCoder, lease_seconds: float) -> SyncEngine:
    # model_copy skips validation: leases shorter than the 5 s minimum keep the test short.
    settings = coder_settings(coder).model_copy(update={"lease_seconds": lease_seconds})
    return build_engine(database, settings)


def test_lease_is_renewed_while_a_long_run_lasts(database_url: str, coder: LiveCoder) -> None:
    async def scenario() -> tuple[bool, bool]:
        database = Database(database_url)
        first, second = _engine(database, coder, 1.0), _engine(database, coder, 1.0)
        try:
            assert await first.acquire_lease()
            taken_midway = False
            async with first._lease_kept():
                for _ in range(12):  # three lease lengths, tried every 0.25 s
                    await asyncio.sleep(0.25)
                    taken_midway = taken_midway or await second.acquire_lease()
            await asyncio.sleep(1.2)  # the run ended: no more renewals, the lease expires
            return taken_midway, await second.acquire_lease()
        finally:
            for engine in (first, second):
                await engine.client.aclose()
            await database.dispose()

    taken_midway, taken_after = asyncio.run(scenario())
    assert not taken_midway, "another replica took the lease during a run"
    assert taken_after
