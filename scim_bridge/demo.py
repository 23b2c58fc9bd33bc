"""`scim-bridge demo`: the whole flow on one machine, with no Coder licence and no IdP.

It starts the bridge (a temporary SQLite database, a temporary SCIM token) and the Coder
double (``scim_bridge.coderdouble``), both served by uvicorn on 127.0.0.1; creates the Coder
users and the bridge's own Coder account; provisions a sample organisation over SCIM as Okta
does (users, then flat groups, then their members); adds the tree with a hierarchy file
(Engineering → Java, Python, Mainframe); waits for the sync; and prints the tree and the
Coder groups it produced. Everything is removed when it ends.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

import httpx
import uvicorn
from starlette.types import ASGIApp

from .admin.render import render_explain, render_tree
from .app import create_app
from .auth import TokenStore
from .coderdouble import CoderState, DoubleConfig, create_coder_double
from .config import CoderSettings, HierarchySettings, Settings
from .store.db import Database
from .store.migrate import ensure_schema

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
DOMAIN = "example.com"


@dataclass(frozen=True)
class Person:
    login: str
    given: str
    family: str
    okta_id: str
    in_coder: bool = True

    @property
    def email(self) -> str:
        return f"{self.login}@{DOMAIN}"


PEOPLE = [
    Person("alice", "Alice", "Archer", "00u1alice0000000001"),
    Person("bob", "Bob", "Baker", "00u1bob000000000002"),
    Person("carol", "Carol", "Cobol", "00u1carol0000000003"),
    Person("dave", "Dave", "Lead", "00u1dave00000000004"),
    Person("erin", "Erin", "Evans", "00u1erin00000000005"),
    Person("frank", "Frank", "Fresh", "00u1frank0000000006", in_coder=False),
]
# The groups as Okta pushes them: flat, each with its direct members.
OKTA_GROUPS: dict[str, list[str]] = {
    "Engineering": ["dave"],
    "Java": ["alice", "erin", "frank"],
    "Python": ["bob", "erin"],
    "Mainframe": ["carol"],
}
# The same shape as config/hierarchy.example.yaml, without its template-admin groups.
HIERARCHY = """\
version: 1
groups:
  - group: Engineering
    cascade: true
    children: [Java, Python, Mainframe]
"""
HAND_MADE = {"designers": ["grace"]}  # made by hand in Coder: the bridge leaves it alone
BRIDGE_ACCOUNT = "scim-bridge"


class DemoError(Exception):
    """The demo could not finish; the message says where it stopped."""


class _Served:
    """One ASGI app under uvicorn on a free 127.0.0.1 port, in a background thread."""

    def __init__(self, name: str, app: ASGIApp, *, lifespan: Literal["on", "off"]) -> None:
        self.name = name
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan=lifespan)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, name=name, daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise DemoError(f"{self.name} did not start; see the log above")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=30)
        self.socket.close()


@contextmanager
def _serving(name: str, app: ASGIApp, *, lifespan: Literal["on", "off"]) -> Iterator[_Served]:
    served = _Served(name, app, lifespan=lifespan)
    try:
        served.start()
        yield served
    finally:
        served.stop()


async def _create_tokens(database_url: str) -> tuple[str, str]:
    """A SCIM token (for "Okta") and an admin token (to watch the sync), on a fresh database."""
    database = Database(database_url)
    try:
        await ensure_schema(database)
        tokens = TokenStore(database)
        return await tokens.create("demo-okta", "scim"), await tokens.create("demo", "admin")
    finally:
        await database.dispose()


def _set_up_coder(state: CoderState) -> str:
    """The Coder side: users (not frank), a hand-made group, and the bridge's own account
    with the `user-admin` role (contract §1.2); returns that account's token."""
    for person in PEOPLE:
        if person.in_coder:
            state.create_user(person.login, person.email, name=f"{person.given} {person.family}")
    for group, members in HAND_MADE.items():
        users = [state.create_user(login, f"{login}@{DOMAIN}") for login in members]
        state.create_group(state.default_org, group, members=users)
    account = state.create_user(
        BRIDGE_ACCOUNT, f"{BRIDGE_ACCOUNT}@{DOMAIN}", login_type="none", roles=["user-admin"]
    )
    return state.create_token(account, "scim-bridge")


def _provision_like_okta(scim: httpx.Client) -> dict[str, str]:
    """Okta's requests: look the user up by userName, create it; create each group empty
    (Push Groups), then add its members with a PATCH."""
    ids: dict[str, str] = {}
    for person in PEOPLE:
        found = _ok(scim.get("/Users", params={"filter": f'userName eq "{person.email}"'}))
        if found["totalResults"]:
            raise DemoError(f"{person.email} already exists in a fresh database")
        body = {
            "schemas": [USER],
            "userName": person.email,
            "name": {"givenName": person.given, "familyName": person.family},
            "emails": [{"primary": True, "value": person.email, "type": "work"}],
            "displayName": f"{person.given} {person.family}",
            "locale": "en-US",
            "externalId": person.okta_id,
            "groups": [],
            "active": True,
        }
        ids[person.login] = str(_ok(scim.post("/Users", json=body))["id"])
    for name, members in OKTA_GROUPS.items():
        created = _ok(scim.post("/Groups", json={"schemas": [GROUP], "displayName": name}))
        ids[name] = str(created["id"])
        value = [{"value": ids[login], "display": f"{login}@{DOMAIN}"} for login in members]
        operation = {"op": "add", "path": "members", "value": value}
        _ok(
            scim.patch(f"/Groups/{ids[name]}", json={"schemas": [PATCH], "Operations": [operation]})
        )
    return ids


def _ok(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise DemoError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}: {response.text}"
        )
    body: dict[str, Any] = response.json()
    return body


def _wait_for_sync(admin: httpx.Client, timeout: float) -> dict[str, Any]:
    """Poll the admin API until the journal is empty: every change reached Coder."""
    deadline = time.monotonic() + timeout
    status = _ok(admin.get("/sync"))
    while status["pending_changes"]:
        if time.monotonic() > deadline:
            runs = status.get("last_runs", {}).values()
            failures = [failure for run in runs for failure in run.get("failures", [])]
            raise DemoError(
                f"the sync did not finish within {timeout:g}s "
                f"({status['pending_changes']} changes pending); last failures: "
                + ("; ".join(failures) or "none")
            )
        time.sleep(0.1)
        status = _ok(admin.get("/sync"))
    return status


def coder_groups(state: CoderState) -> dict[str, tuple[str, list[str]]]:
    """Every group of the default organization: name → (display name, member usernames)."""
    return {
        name: (group.display_name, sorted(state.member_usernames(group)))
        for name, group in sorted(state.groups_named().items())
    }


def _print_result(
    out: TextIO,
    state: CoderState,
    tree: dict[str, Any],
    explanation: dict[str, Any],
    status: dict[str, Any],
) -> None:
    print("\nThe group tree in scim-bridge (scim-bridge tree):", file=out)
    print(render_tree(tree), file=out)
    print("\nWhy is dave in Java? (scim-bridge explain dave@example.com Java)", file=out)
    print(render_explain(explanation, "Java"), file=out)
    groups = coder_groups(state)
    others = {name for name in groups if name in HAND_MADE or name == "Everyone"}
    org = state.default_org.name
    print(f'\nCoder groups written by the bridge (organization "{org}"):', file=out)
    for name, (display, members) in groups.items():
        if name not in others:
            print(f"  {name} ({display}): {', '.join(members) or '-'}", file=out)
    print("Coder groups left alone (not the bridge's):", file=out)
    for name in sorted(others):
        display, members = groups[name]
        print(f"  {name}: {', '.join(members) or '-'}", file=out)
    runs = sorted(status["last_runs"].values(), key=lambda run: str(run.get("finished")))
    pending = runs[-1].get("pending_users", {}) if runs else {}
    if pending:
        print("Pending users (no Coder account yet; retried at every sync):", file=out)
        for user, why in sorted(pending.items()):
            print(f"  {user}: {why}", file=out)


def run_demo(out: TextIO | None = None, *, keep_running: bool = False, timeout: float = 60) -> int:
    """Run the demo, print what happened to ``out`` (stdout); 0 once Coder shows the tree."""
    out = sys.stdout if out is None else out
    with tempfile.TemporaryDirectory(prefix="scim-bridge-demo-") as temporary:
        folder = Path(temporary)
        hierarchy_file = folder / "hierarchy.yaml"
        hierarchy_file.write_text(HIERARCHY)
        database_url = f"sqlite:///{folder / 'scim-bridge.db'}"
        scim_token, admin_token = asyncio.run(_create_tokens(database_url))

        coder_app, state = create_coder_double(DoubleConfig())
        coder_token = _set_up_coder(state)
        with _serving("the Coder double", coder_app, lifespan="off") as coder:
            settings = Settings(
                database_url=database_url,
                hierarchy=HierarchySettings(file=str(hierarchy_file)),
                coder=CoderSettings(
                    url=coder.url,
                    token=coder_token,
                    debounce_seconds=0.2,
                    resync_interval_seconds=300,
                ),
                log_level="warning",
            )
            with _serving("scim-bridge", create_app(settings), lifespan="on") as bridge:
                _say_started(out, coder.url, bridge.url, hierarchy_file)
                scim = httpx.Client(
                    base_url=f"{bridge.url}/scim/v2",
                    headers={"Authorization": f"Bearer {scim_token}"},
                    timeout=30,
                )
                admin = httpx.Client(
                    base_url=f"{bridge.url}/admin/api",
                    headers={"Authorization": f"Bearer {admin_token}"},
                    timeout=30,
                )
                with scim, admin:
                    print("\n3. Okta provisions over SCIM: users, then flat groups:", file=out)
                    _provision_like_okta(scim)
                    for name, members in OKTA_GROUPS.items():
                        print(f"   {name}: {', '.join(members)}", file=out)
                    started = time.monotonic()
                    print("4. Waiting for the sync to Coder…", file=out, flush=True)
                    status = _wait_for_sync(admin, timeout)
                    print(f"   done in {time.monotonic() - started:.1f}s", file=out)
                    tree = _ok(admin.get("/tree"))
                    explanation = _ok(
                        admin.get("/users/dave@example.com", params={"group": "Java"})
                    )
                    _print_result(out, state, tree, explanation, status)
                if not keep_running:
                    print(
                        "\nYour own Coder: docs/coder.md. To explore this one with curl: "
                        "scim-bridge demo --keep-running",
                        file=out,
                    )
                    return 0
                _say_keep_running(out, coder.url, bridge.url, scim_token, admin_token, coder_token)
                _block_until_interrupted()
                print("\nStopped; the temporary database and tokens are gone.", file=out)
    return 0


def _say_started(out: TextIO, coder_url: str, bridge_url: str, hierarchy: Path) -> None:
    in_coder = [p.login for p in PEOPLE if p.in_coder]
    missing = [p.login for p in PEOPLE if not p.in_coder]
    print("scim-bridge demo: the bridge and a Coder double on 127.0.0.1, nothing else.", file=out)
    print(f"\n1. Coder (the double) at {coder_url}", file=out)
    print(f"   users: {', '.join(in_coder)} (not {', '.join(missing)})", file=out)
    print(
        f"   the bridge's Coder account: {BRIDGE_ACCOUNT} (role user-admin) and its API token",
        file=out,
    )
    for group, members in HAND_MADE.items():
        print(f"   a group made by hand in Coder: {group} ({', '.join(members)})", file=out)
    print(f"2. scim-bridge at {bridge_url} (temporary SQLite database)", file=out)
    print(
        f"   hierarchy file {hierarchy.name}: Engineering (cascade) → Java, Python, Mainframe",
        file=out,
    )


def _say_keep_running(
    out: TextIO, coder_url: str, bridge_url: str, scim: str, admin: str, coder: str
) -> None:
    print(
        f"""
Still running; press Ctrl-C to stop (everything is deleted then). Try:
  curl -H 'Authorization: Bearer {scim}' {bridge_url}/scim/v2/Groups
  curl -H 'Authorization: Bearer {admin}' {bridge_url}/admin/api/sync
  curl {bridge_url}/metrics
  curl -H 'Coder-Session-Token: {coder}' {coder_url}/api/v2/organizations/default/groups""",
        file=out,
        flush=True,
    )


def _block_until_interrupted() -> None:
    """Wait for Ctrl-C (or SIGTERM), then return so that everything is cleaned up."""
    stop = threading.Event()
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if main else None
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        return
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)
