"""Schema migrations (Alembic): `scim-bridge db upgrade`, and the SQLite default on start."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from .db import Database, sync_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Bring the database schema to ``revision`` (idempotent)."""
    command.upgrade(alembic_config(database_url), revision)


def current_revision(database_url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


async def ensure_schema(database: Database) -> None:
    """SQLite (the embedded default) migrates itself; PostgreSQL must be migrated explicitly."""
    import asyncio

    if database.is_sqlite:
        await asyncio.to_thread(upgrade, database.url)
        return
    current = await asyncio.to_thread(current_revision, database.url)
    head = ScriptDirectory.from_config(alembic_config(database.url)).get_current_head()
    if current != head:
        raise SchemaError(
            f"the database schema is at revision {current or 'none'}, this version needs {head}: "
            "run `scim-bridge db upgrade` (with the same configuration) before starting"
        )


class SchemaError(Exception):
    """The database schema does not match this version of scim-bridge."""
