"""Running the Coder double for real in tests: uvicorn on 127.0.0.1 in a background thread,
like tests/server.py does for the bridge.

`run_coder_double()` starts a server for one double. Suites that want a fresh double per
test without paying uvicorn's start/stop each time keep one `coder_double_server()` per
module and call `server.serve()` per test: the server then answers with the new double.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from scim_bridge.coderdouble import Clock, CoderState, DoubleConfig, User, create_coder_double
from scim_bridge.config import CoderSettings
from tests.server import LiveServer, free_port

NON_OWNER_ROLES = ("user-admin", "template-admin")


@dataclass(frozen=True)
class LiveCoder:
    """A served double: its base URL (no `/api/v2`), tokens and state."""

    url: str
    owner_token: str  # the first user ("admin"), site role `owner`
    token: str  # a non-owner ("bridge"): site roles `user-admin` + `template-admin`
    state: CoderState
    owner: User
    admin: User

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v2"

    def client(self, token: str | None = None, **headers: str) -> httpx.Client:
        """An httpx client on the base URL sending `Coder-Session-Token` (owner by default;
        `token=""` sends none)."""
        sent = {} if token == "" else {"Coder-Session-Token": token or self.owner_token}
        sent.update(headers)
        return httpx.Client(base_url=self.url, headers=sent, timeout=30)


class DoubleServer:
    """uvicorn on a free loopback port, answering with whichever double is current."""

    def __init__(self) -> None:
        self._app: ASGIApp | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = uvicorn.Server(
            uvicorn.Config(
                self, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._app
        if app is None:
            raise RuntimeError("no Coder double is being served")
        await app(scope, receive, send)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Coder double did not start; see the log above")
            time.sleep(0.01)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    @contextmanager
    def serve(
        self,
        config: DoubleConfig | None = None,
        clock: Clock | None = None,
        *,
        non_owner_roles: tuple[str, ...] = NON_OWNER_ROLES,
    ) -> Iterator[LiveCoder]:
        """A fresh double (default organization, owner `admin`, non-owner `bridge`)."""
        app, state = create_coder_double(config, clock)
        owner_token = state.create_token(state.first_user, "tests-owner")
        admin = state.create_user(
            "bridge",
            "bridge@example.com",
            name="Bridge",
            login_type="none",
            roles=list(non_owner_roles),
        )
        token = state.create_token(admin, "tests-bridge")
        self._app = app
        try:
            yield LiveCoder(self.url, owner_token, token, state, state.first_user, admin)
        finally:
            self._app = None


@contextmanager
def coder_double_server() -> Iterator[DoubleServer]:
    server = DoubleServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def run_coder_double(
    config: DoubleConfig | None = None,
    clock: Clock | None = None,
    *,
    non_owner_roles: tuple[str, ...] = NON_OWNER_ROLES,
) -> Iterator[LiveCoder]:
    """Serve a fresh double on a free loopback port for the duration of the block."""
    with (
        coder_double_server() as server,
        server.serve(config, clock, non_owner_roles=non_owner_roles) as live,
    ):
        yield live


def coder_settings(live: LiveCoder, **overrides: Any) -> CoderSettings:
    """The bridge's Coder settings for tests: this double, quick debounce, no pacing, no
    scheduled resync (tests ask for one)."""
    values: dict[str, Any] = {
        "url": live.url,
        "token": live.token,
        "debounce_seconds": 0.05,
        "resync_interval_seconds": 0,
        "rate_limit_per_minute": 0,
    }
    values.update(overrides)
    return CoderSettings.model_validate(values)


# -- waiting for the bridge's background worker ------------------------------------------------


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


def assert_equal(actual: Any, expected: Any) -> None:
    assert actual == expected


def admin_client(bridge: LiveServer) -> httpx.Client:
    """An HTTP client for the bridge's admin API, with its admin token."""
    return httpx.Client(
        base_url=f"{bridge.url}/admin/api",
        headers={"Authorization": f"Bearer {bridge.admin_token}"},
        timeout=30,
    )


def pending_changes(bridge: LiveServer) -> int:
    with admin_client(bridge) as admin:
        return int(admin.get("/sync").json()["pending_changes"])


def full_sync(bridge: LiveServer) -> dict[str, Any]:
    """Ask for a full resync and wait for its report."""
    with admin_client(bridge) as admin:
        before = admin.get("/sync").json()["last_runs"].get("full", {}).get("finished")
        assert admin.post("/sync").status_code == 202

        def finished() -> dict[str, Any]:
            run = admin.get("/sync").json()["last_runs"].get("full", {})
            assert run.get("finished") and run.get("finished") != before
            return dict(run)

        return dict(eventually(finished))
