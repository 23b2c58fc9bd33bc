"""Database engines for SQLite (the embedded default) and PostgreSQL.

Reads run on a pool of connections. Writes on SQLite go through one connection that begins
with ``BEGIN IMMEDIATE``, so concurrent writers queue instead of failing with "database is
locked"; on PostgreSQL they share the pool and serialize on row locks (``FOR UPDATE``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine


def async_url(url: str) -> str:
    """The SQLAlchemy async URL of a configured ``sqlite:///…`` or ``postgresql://…`` URL."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    driver = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
    backend = parsed.get_backend_name()
    return parsed.set(drivername=driver[backend]).render_as_string(hide_password=False)


def sync_url(url: str) -> str:
    """The SQLAlchemy synchronous URL (Alembic migrations run synchronously)."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    driver = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}
    return parsed.set(drivername=driver[parsed.get_backend_name()]).render_as_string(
        hide_password=False
    )


def _configure_sqlite(engine: AsyncEngine, *, immediate: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event decide how transactions start (pysqlite's own
        # implicit BEGIN would defer the write lock and deadlock concurrent writers).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # SCIM string comparisons are case-sensitive on already case-folded values.
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """The engines of one database, and transactions on them."""

    def __init__(self, url: str, *, echo: bool = False):
        self.url = url
        self.async_url = async_url(url)
        self.dialect = make_url(self.async_url).get_backend_name()
        if self.is_sqlite:
            self.engine = create_async_engine(self.async_url, echo=echo, pool_size=8)
            self.write_engine = create_async_engine(
                self.async_url, echo=echo, pool_size=1, max_overflow=0, pool_timeout=60
            )
            _configure_sqlite(self.engine, immediate=False)
            _configure_sqlite(self.write_engine, immediate=True)
        else:
            self.engine = create_async_engine(
                self.async_url, echo=echo, pool_size=10, max_overflow=20, pool_pre_ping=True
            )
            self.write_engine = self.engine

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, committed on success and rolled back on error."""
        engine = self.write_engine if write else self.engine
        async with engine.connect() as connection, connection.begin():
            yield connection

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self.write_engine is not self.engine:
            await self.write_engine.dispose()
