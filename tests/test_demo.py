"""`scim-bridge demo`: it runs the bridge and the Coder double on 127.0.0.1, provisions the sample
organisation, and prints the Coder groups the sync produced. The demo runs once for this module
(it takes a few seconds); each test reads one part of what it printed.

It uses its own temporary SQLite database, so it is not parametrised over the backends.
"""

from __future__ import annotations

import io
import re

import pytest

from scim_bridge import cli
from scim_bridge.demo import run_demo

GROUP_LINE = re.compile(r"^  (\S+)(?: \((.*)\))?: (.*)$")


def section(output: str, heading: str) -> dict[str, list[str]]:
    """The indented ``  name (Display): a, b`` lines under the line that starts with
    ``heading``: name → members."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    groups: dict[str, list[str]] = {}
    for line in lines[start + 1 :]:
        found = GROUP_LINE.match(line)
        if found is None:
            break
        members = found.group(3)
        groups[found.group(1)] = [] if members == "-" else members.split(", ")
    return groups


@pytest.fixture(scope="module")
def demo() -> tuple[int, str]:
    out = io.StringIO()
    code = run_demo(out, timeout=60)
    return code, out.getvalue()


def test_demo_exits_by_itself_with_success(demo: tuple[int, str]) -> None:
    code, _ = demo
    assert code == 0


def test_demo_prints_the_coder_groups_the_tree_gives(demo: tuple[int, str]) -> None:
    _, output = demo
    assert section(output, "Coder groups written by the bridge") == {
        "engineering": ["alice", "bob", "carol", "dave", "erin"],
        "java": ["alice", "dave", "erin"],
        "mainframe": ["carol", "dave"],
        "python": ["bob", "dave", "erin"],
    }


def test_demo_shows_the_hand_made_coder_group_untouched(demo: tuple[int, str]) -> None:
    _, output = demo
    assert section(output, "Coder groups left alone")["designers"] == ["grace"]


def test_demo_shows_the_user_without_a_coder_account_as_pending(demo: tuple[int, str]) -> None:
    _, output = demo
    pending = section(output, "Pending users")
    assert list(pending) == ["frank@example.com"]


def test_demo_prints_the_tree_from_the_hierarchy_file(demo: tuple[int, str]) -> None:
    _, output = demo
    assert "Engineering  [direct 1, effective 6, cascade]" in output
    assert "└─ Python  [direct 2, effective 3] (file)" in output


def test_demo_subcommand_takes_keep_running_and_a_timeout() -> None:
    args = cli.build_parser().parse_args(["demo", "--keep-running", "--timeout", "5"])
    assert (args.func, args.keep_running, args.timeout) == (cli._demo, True, 5.0)
