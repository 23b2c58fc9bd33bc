"""`scim-bridge tree`, `explain` and `hierarchy check`, run through ``cli.main`` against the
database named by SCIM_BRIDGE_DATABASE_URL, on SQLite and PostgreSQL.

The organisation is provisioned over SCIM by a live server whose hierarchy file makes
Engineering cascade and names Java (and Mainframe, never provisioned) its children:

    Engineering (dave) ── cascade           Platform (erin)
    ├─ Java (alice, bob, frank¹)  file+scim └─ Java  scim
    │  └─ Spring (grace)          scim         └─ Spring
    └─ Python (carol)             scim

¹ frank is deactivated.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from scim_bridge.auth import TokenStore
from scim_bridge.cli import main
from scim_bridge.config import HierarchySettings, Settings
from scim_bridge.store.db import Database
from tests.server import create_token, run_server
from tests.test_admin_api import deactivate, make_group, make_user, scim_client

HIERARCHY = """
version: 1
groups:
  - group: Engineering
    cascade: true
    children: [Java, Mainframe]
"""


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A clean environment for the CLI, in a directory of its own; returns that directory."""
    for name in ("SCIM_BRIDGE_CONFIG", "SCIM_BRIDGE_DATABASE_URL", "TEST_POSTGRES_URL"):
        monkeypatch.delenv(name, raising=False)
    workdir = tmp_path / "cli"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return workdir


@pytest.fixture
def database(cli_env: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test database, configured for the CLI through SCIM_BRIDGE_DATABASE_URL."""
    monkeypatch.setenv("SCIM_BRIDGE_DATABASE_URL", database_url)
    return database_url


@pytest.fixture
def organisation(database: str, tmp_path: Path) -> dict[str, str]:
    """The organisation of the module docstring, provisioned; the server is stopped after."""
    hierarchy = tmp_path / "hierarchy.yaml"
    hierarchy.write_text(HIERARCHY)
    settings = Settings(database_url=database, hierarchy=HierarchySettings(file=str(hierarchy)))
    token = asyncio.run(create_token(database, "tests"))
    with run_server(settings, token) as server, scim_client(server) as scim:
        ids = {name: make_user(scim, name) for name in ("alice", "bob", "carol", "dave", "erin")}
        ids["frank"], ids["grace"] = make_user(scim, "frank"), make_user(scim, "grace")
        ids["Spring"] = make_group(scim, "Spring", [ids["grace"]])
        ids["Java"] = make_group(
            scim, "Java", [ids["alice"], ids["bob"], ids["frank"], ids["Spring"]]
        )
        ids["Python"] = make_group(scim, "Python", [ids["carol"]])
        ids["Engineering"] = make_group(
            scim, "Engineering", [ids["dave"], ids["Java"], ids["Python"]]
        )
        ids["Platform"] = make_group(scim, "Platform", [ids["erin"], ids["Java"]])
        deactivate(scim, ids["frank"])
    return ids


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run the CLI; return its exit code, stdout and stderr."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    code, out, _ = run(capsys, "tree", "--json")
    assert code == 0
    return dict(json.loads(out))


def write_file(directory: Path, text: str) -> str:
    path = directory / "check.yaml"
    path.write_text(text.strip() + "\n")
    return str(path)


# -- tree ---------------------------------------------------------------------------------


def test_tree_prints_each_group_under_its_parents_with_counts_cascade_and_edge_sources(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "tree")
    assert code == 0
    assert out == (
        "Engineering  [direct 1, effective 5, cascade]\n"
        "  ├─ Java  [direct 3, effective 4] (file, scim)\n"
        "  │  └─ Spring  [direct 1, effective 2] (scim)\n"
        "  └─ Python  [direct 1, effective 2] (scim)\n"
        "Platform  [direct 1, effective 4]\n"
        "  └─ Java  [direct 3, effective 4] (scim)\n"
        "     └─ Spring  [direct 1, effective 2] (scim)\n"
    )


def test_tree_shows_a_group_with_two_parents_under_each_of_them(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "tree")
    java_lines = [line for line in out.splitlines() if "─ Java " in line]
    assert len(java_lines) == 2
    assert len([line for line in out.splitlines() if "─ Spring " in line]) == 2


def test_tree_json_prints_the_admin_api_tree_view(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "tree", "--json")
    tree = json.loads(out)
    assert code == 0
    assert tree["roots"] == [organisation["Engineering"], organisation["Platform"]]
    java = next(g for g in tree["groups"] if g["displayName"] == "Java")
    assert sorted(java["parents"]) == sorted(
        [organisation["Engineering"], organisation["Platform"]]
    )


def test_tree_of_a_database_without_groups_says_so(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "tree")
    assert code == 0
    assert out.startswith("no groups yet")


# -- explain ------------------------------------------------------------------------------


def test_explain_lists_every_group_of_the_user_with_the_paths_that_put_them_there(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "explain", "grace")
    assert code == 0
    assert out == (
        "grace is effectively in 4 groups:\n"
        "  Engineering: via Spring → Java → Engineering\n"
        "  Java: via Spring → Java\n"
        "  Platform: via Spring → Java → Platform\n"
        "  Spring: direct\n"
    )


def test_explain_names_the_cascading_group_a_membership_comes_from(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = run(capsys, "explain", "dave")
    assert out == (
        "dave is effectively in 4 groups:\n"
        "  Engineering: direct\n"
        "  Java: cascade from Engineering\n"
        "  Python: cascade from Engineering\n"
        "  Spring: cascade from Engineering\n"
    )


def test_explain_with_a_group_explains_only_that_group(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "explain", "alice", "platform")
    assert code == 0
    assert out == "alice is in Platform: via Java → Platform\n"


def test_explain_says_when_the_user_is_not_in_the_group(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "explain", "erin", "Engineering")
    assert code == 0
    assert out.startswith("erin is not in Engineering: ")


def test_explain_says_a_deactivated_user_is_deactivated(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "explain", "frank")
    assert code == 0
    assert out == (
        "frank is deactivated: no effective memberships; its stored memberships are kept "
        "(3 groups when re-activated)\n"
    )


def test_explain_json_prints_the_admin_api_user_view(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "explain", "alice", "--json")
    user = json.loads(out)
    assert code == 0
    assert user["id"] == organisation["alice"]
    assert {g["displayName"]: [r["kind"] for r in g["reasons"]] for g in user["groups"]} == {
        "Engineering": ["via"],
        "Java": ["direct"],
        "Platform": ["via"],
    }


def test_explain_of_an_unknown_user_exits_1_naming_it(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "explain", "zoe")
    assert code == 1
    assert out == ""
    assert "no user with id, userName or externalId 'zoe'" in err


# -- hierarchy check ----------------------------------------------------------------------


def test_hierarchy_check_of_a_valid_file_exits_0_with_a_summary(
    organisation: dict[str, str],
    backend: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    file = write_file(tmp_path, HIERARCHY)
    code, out, err = run(capsys, "hierarchy", "check", file)
    assert code == 0, err
    assert out.splitlines() == [
        f"{file} is valid on its own: 3 groups named, 2 parent→child edges, cascading: Engineering",
        f"checked against 5 provisioned groups in the database ({backend})",
        "not provisioned yet (their edges take effect when they arrive): Mainframe",
        "applying it changes nothing in the tree in force",
    ]


def test_hierarchy_check_lists_the_groups_the_file_names_that_are_not_provisioned_yet(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    file = write_file(tmp_path, "groups:\n  - group: Engineering\n    children: [Java, Cobol]")
    code, out, _ = run(capsys, "hierarchy", "check", file)
    assert code == 0
    assert "not provisioned yet (their edges take effect when they arrive): Cobol" in out


def test_hierarchy_check_shows_what_applying_the_file_would_change(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    file = write_file(tmp_path, "groups:\n  - group: Platform\n    children: [Python]")
    _, out, _ = run(capsys, "hierarchy", "check", file)
    assert out.splitlines()[-4:] == [
        "applying it would change the tree in force:",
        "  + Platform → Python",
        "  - Engineering → Java",
        "  - cascade Engineering",
    ]


def test_hierarchy_check_of_an_invalid_file_exits_1_listing_every_problem(
    database: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    file = write_file(
        tmp_path,
        """
groups:
  - group: Engineering
    children: [Java]
  - group: Java
    children: [Java, Engineering]
  - group: Engineering
""",
    )
    code, out, err = run(capsys, "hierarchy", "check", file)
    assert code == 1
    assert out == ""
    assert "groups.1: Java cannot be its own child" in err
    assert "groups.2: Engineering is listed again (first at groups.0)" in err
    assert "the file makes a cycle: Engineering → Java → Engineering" in err


def test_hierarchy_check_finds_a_cycle_with_the_provisioned_groups_and_changes_nothing(
    organisation: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    before = tree_json(capsys)
    file = write_file(tmp_path, "groups:\n  - group: Spring\n    children: [Platform]")
    code, _, err = run(capsys, "hierarchy", "check", file)
    assert code == 1
    assert "with the provisioned groups the file makes a cycle: " in err
    for edge in ("Spring → Platform (file)", "Platform → Java (scim)", "Java → Spring (scim)"):
        assert edge in err
    assert tree_json(capsys) == before


def test_hierarchy_check_without_a_database_checks_the_file_alone(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = write_file(cli_env, HIERARCHY)
    code, out, _ = run(capsys, "hierarchy", "check", file)
    assert code == 0
    assert out.splitlines()[1].startswith("no database configured")
    assert not (cli_env / "scim-bridge.db").exists()


# -- tokens -------------------------------------------------------------------------------


def test_token_help_shows_the_admin_scope(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "create", "--help"])
    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--scope {scim,admin}" in help_text
    assert "admin: for the admin API on /admin/api" in help_text


def test_token_created_with_admin_scope_is_an_admin_token_only(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "token", "create", "--scope", "admin", "--name", "ops")
    token = out.strip()
    assert code == 0
    assert "/admin/api" in err

    async def verify(scope: str) -> bool:
        db = Database(database)
        try:
            return await TokenStore(db).verify(token, scope) is not None
        finally:
            await db.dispose()

    assert asyncio.run(verify("admin")) is True
    assert asyncio.run(verify("scim")) is False
