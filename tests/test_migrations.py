"""Schema migrations: Alembic creates exactly the declared tables; PostgreSQL is migrated
explicitly, SQLite migrates itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine
from sqlmodel import SQLModel

from scim_bridge.cli import main
from scim_bridge.store import tables  # noqa: F401  (declares the tables)
from scim_bridge.store.db import Database, sync_url
from scim_bridge.store.migrate import SchemaError, current_revision, ensure_schema
from tests.conftest import _create_pg_database, _drop_pg_database


def test_migrations_create_exactly_the_declared_tables(database_url: str) -> None:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            differences = compare_metadata(
                MigrationContext.configure(connection), SQLModel.metadata
            )
    finally:
        engine.dispose()
    assert differences == []


def test_sqlite_migrates_itself_on_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    database = Database(url)
    asyncio.run(ensure_schema(database))
    assert current_revision(url) is not None


def test_postgresql_refuses_to_start_on_an_unmigrated_schema(postgres_admin_url: str) -> None:
    name, url = _create_pg_database(postgres_admin_url)
    try:
        with pytest.raises(SchemaError, match="run `scim-bridge db upgrade`"):
            asyncio.run(ensure_schema(Database(url)))
    finally:
        _drop_pg_database(postgres_admin_url, name)


def test_db_upgrade_command_migrates_postgresql(
    postgres_admin_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    name, url = _create_pg_database(postgres_admin_url)
    monkeypatch.setenv("SCIM_BRIDGE_DATABASE_URL", url)
    try:
        assert main(["db", "upgrade"]) == 0
        assert "up to date" in capsys.readouterr().out
        asyncio.run(ensure_schema(Database(url)))  # no SchemaError: at head
    finally:
        _drop_pg_database(postgres_admin_url, name)
