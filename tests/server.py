"""Running scim-bridge for real in tests: uvicorn on 127.0.0.1 in a background thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from scim_bridge.app import create_app
from scim_bridge.auth import TokenStore
from scim_bridge.config import Settings
from scim_bridge.store.db import Database


@dataclass(frozen=True)
class LiveServer:
    url: str
    token: str
    settings: Settings
    admin_token: str | None = None

    @property
    def scim_url(self) -> str:
        return f"{self.url}/scim/v2"


async def create_token(database_url: str, name: str, scope: str = "scim") -> str:
    database = Database(database_url)
    try:
        return await TokenStore(database).create(name, scope)
    finally:
        await database.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def run_server(settings: Settings, token: str) -> Iterator[LiveServer]:
    port = free_port()
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("scim-bridge did not start; see the log above")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}", token, settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
