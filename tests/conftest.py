"""Fixtures: a fresh database per test on SQLite and PostgreSQL, and a live server over HTTP."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scim_bridge.coderdouble.config import DoubleConfig
from scim_bridge.config import Settings
from scim_bridge.store.migrate import upgrade
from tests.coder_fixtures import LiveCoder, run_coder_double
from tests.server import LiveServer, create_token, run_server

PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ["sqlite", "postgresql"]


def _postgres_reachable() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0]


@pytest.fixture(scope="session")
def postgres_admin_url() -> str:
    problem = _postgres_reachable()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(
                f"PostgreSQL is required in CI but unreachable at {PG_ADMIN_URL}: {problem}"
            )
        pytest.skip(
            f"PostgreSQL unreachable at {PG_ADMIN_URL} ({problem}); PostgreSQL tests skipped"
        )
    return PG_ADMIN_URL


def _create_pg_database(admin_url: str, template: str | None = None) -> tuple[str, str]:
    import psycopg

    name = f"scim_bridge_test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"{copy}')
    base = admin_url.rsplit("/", 1)[0]
    return name, f"{base}/{name}"


def _drop_pg_database(admin_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file; each test gets a copy (migrating once per session is faster)."""
    path = tmp_path_factory.mktemp("template") / "scim-bridge.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> Iterator[str]:
    """A migrated PostgreSQL database that each test's database is created from."""
    name, url = _create_pg_database(postgres_admin_url)
    try:
        upgrade(url)
        yield name
    finally:
        _drop_pg_database(postgres_admin_url, name)


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty, migrated database of the backend under test, dropped afterwards."""
    if backend == "sqlite":
        path = tmp_path / "scim-bridge.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    admin_url = request.getfixturevalue("postgres_admin_url")
    name, url = _create_pg_database(admin_url, request.getfixturevalue("postgres_template"))
    try:
        yield url
    finally:
        _drop_pg_database(admin_url, name)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url)


@pytest.fixture
def live_server(settings: Settings) -> Iterator[LiveServer]:
    """scim-bridge served by uvicorn on 127.0.0.1, with a SCIM token."""
    token = asyncio.run(create_token(settings.database_url, "tests"))
    with run_server(settings, token) as server:
        yield server


@pytest.fixture
def scim(live_server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client for the live server's SCIM root, authenticated."""
    with httpx.Client(
        base_url=live_server.scim_url,
        headers={"Authorization": f"Bearer {live_server.token}"},
        timeout=30,
    ) as client:
        yield client


PEOPLE = ["alice", "bob", "carol", "dave"]


@pytest.fixture
def coder() -> Iterator[LiveCoder]:
    """The Coder double over HTTP, its rate limit off, with users alice, bob, carol, dave."""
    with run_coder_double(DoubleConfig(rate_limit=0)) as live:
        for name in PEOPLE:
            live.state.create_user(name, f"{name}@example.com")
        yield live
