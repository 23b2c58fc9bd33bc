"""Fast preload: the rows SqlScimStorage would write, inserted in bulk instead of per request.

Each resource goes through the same steps as ``POST`` does: scim2-server validates the JSON
body (``ScimService.read_creation``), then the storage's own code turns it into rows
(``SqlScimStorage._stored_data``/``_keys`` for the resource row, ``_build`` for the reloaded
resource, ``flatten`` for its ``attribute_index`` rows). Only the writing differs: SQLite gets
``executemany`` batches through SQLAlchemy (the same column types as the storage), PostgreSQL
gets ``COPY``. :func:`verify_preload` checks the result against ``SqlScimStorage.create``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Protocol, cast

from scim2_models import ResourceType, ResponseParameters, ScimProvider
from scim2_server.service import ScimService
from sqlalchemy import Integer, MetaData, create_engine, insert, select
from sqlalchemy.engine import Engine

from scim_bridge.config import Settings
from scim_bridge.scim.provider import build_provider
from scim_bridge.store.db import Database, sync_url
from scim_bridge.store.flatten import flatten
from scim_bridge.store.scim_storage import SqlScimStorage, etag
from scim_bridge.store.tables import GROUPS, INDEX, MEMBERS, USERS

from .dataset import Dataset, group_payload, user_payload

MEMBER_COLUMNS = ("group_id", "member_id", "member_type")
INDEX_COLUMNS = ("resource_type", "resource_id", "path", "item", "kind", "text", "number")
NO_RELATED: dict[str, ResponseParameters[Any]] = {
    "User": ResponseParameters(excluded_attributes=["groups"]),
    "Group": ResponseParameters(excluded_attributes=["members"]),
}
BATCH = 1000


@dataclass
class Batch:
    """Rows of some resources, per table, as the storage writes them."""

    users: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    members: list[dict[str, Any]] = field(default_factory=list)
    index: list[dict[str, Any]] = field(default_factory=list)
    memory: list[dict[str, Any]] = field(default_factory=list)


class Sink(Protocol):
    """Where preloaded rows go."""

    def write(self, batch: Batch) -> None: ...

    def finish(self) -> None:
        """After the last batch: derive what the storage derives from the rows."""

    def close(self) -> None: ...


def derive_tables(database_url: str) -> None:
    """Fill the tables the storage derives from direct memberships (effective_member), with
    the storage's own repair routine, when this version of scim-bridge has them."""
    try:
        from scim_bridge.hierarchy.engine import Inheritance
    except ImportError:  # before effective memberships existed
        return

    async def run() -> None:
        database = Database(database_url)
        try:
            async with database.transaction(write=True) as connection:
                await Inheritance(database).recompute(connection)
        finally:
            await database.dispose()

    asyncio.run(run())


class RowBuilder:
    """Turns SCIM payloads into the rows of the storage, with the storage's own code."""

    def __init__(self) -> None:
        self.provider: ScimProvider = build_provider(Settings())
        self.service = ScimService(self.provider)
        # The storage is only asked for its row-building helpers: it never connects.
        self.storage = SqlScimStorage(cast(Database, None), self.provider)
        self.types = {rt.id: rt for rt in self.provider.resource_types}
        self.loop = asyncio.new_event_loop()

    def close(self) -> None:
        self.loop.close()

    def resource_rows(
        self,
        type_id: str,
        resource_id: str,
        payload: dict[str, Any],
        stamp: datetime,
        batch: Batch,
    ) -> dict[str, Any]:
        """Add one resource's row and index rows to ``batch``; return the row."""
        resource_type: ResourceType = self.types[type_id]
        with self.provider:
            resource = self.service.read_creation(
                resource_type, json.dumps(payload).encode(), "application/scim+json"
            )
        row = {
            "id": resource_id,
            "data": self.storage._stored_data(resource),
            "version": 1,
            "created": stamp,
            "last_modified": stamp,
            **self.storage._keys(resource_type, resource),
        }
        stored = SimpleNamespace(**row)
        build = self.storage._build(
            None,  # type: ignore[arg-type]  # no related rows are loaded, so no query is made
            resource_type,
            [stored],
            NO_RELATED[type_id],
        )
        reloaded = self.loop.run_until_complete(build)[0]
        for value in flatten(reloaded):
            batch.index.append(
                {
                    "resource_type": type_id,
                    "resource_id": resource_id,
                    "path": value.path,
                    "item": value.item,
                    "kind": value.kind,
                    "text": value.text,
                    "number": value.number,
                }
            )
        (batch.users if type_id == "User" else batch.groups).append(row)
        return row


def memory_resource(
    type_id: str, resource_id: str, payload: dict[str, Any], stamp: datetime
) -> dict[str, Any]:
    """The resource the in-memory reference stores for the same data."""
    moment = stamp.isoformat()
    meta = {"resourceType": type_id, "created": moment, "lastModified": moment, "version": etag(1)}
    return {**payload, "id": resource_id, "meta": meta}


_builder: RowBuilder | None = None


def _build_chunk(job: tuple[Dataset, str, int, int, datetime, bool]) -> Batch:
    """The rows of users (or groups) ``start``..``stop`` (run in a worker process)."""
    global _builder
    dataset, kind, start, stop, base, memory = job
    if _builder is None:
        _builder = RowBuilder()
    batch = Batch()
    if kind == "User":
        user_ids = dataset.user_ids()
        for index in range(start, stop):
            stamp = base + timedelta(microseconds=index)
            payload = user_payload(index)
            _builder.resource_rows("User", user_ids[index], payload, stamp, batch)
            if memory:
                batch.memory.append(memory_resource("User", user_ids[index], payload, stamp))
        return batch
    user_ids, group_ids = dataset.user_ids(), dataset.group_ids()
    for index in range(start, stop):
        stamp = base + timedelta(microseconds=dataset.users + index)
        group_id, payload = group_ids[index], group_payload(index)
        members = dataset.member_indexes(index)
        _builder.resource_rows("Group", group_id, payload, stamp, batch)
        batch.members.extend(
            {"group_id": group_id, "member_id": user_ids[m], "member_type": "User"} for m in members
        )
        if memory:
            entries = [
                {
                    "value": user_ids[m],
                    "type": "User",
                    "display": user_payload(m)["displayName"],
                    "$ref": f"Users/{user_ids[m]}",
                }
                for m in members
            ]
            batch.memory.append(
                memory_resource("Group", group_id, {**payload, "members": entries}, stamp)
            )
    return batch


def batches(dataset: Dataset, *, memory: bool, processes: int = 1) -> Iterator[Batch]:
    """The rows of the whole dataset, users first, in batches; ``created`` grows by 1 µs.

    With ``processes`` > 1 the rows are built in that many worker processes (in order).
    """
    base = datetime.now(UTC) - timedelta(days=1)
    jobs = [
        (dataset, "User", start, min(start + BATCH, dataset.users), base, memory)
        for start in range(0, dataset.users, BATCH)
    ] + [
        (dataset, "Group", start, min(start + BATCH, dataset.groups), base, memory)
        for start in range(0, dataset.groups, BATCH)
    ]
    if processes <= 1:
        yield from map(_build_chunk, jobs)
        return
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        yield from pool.imap(_build_chunk, jobs)


class SqliteSink:
    """executemany in one transaction per batch.

    The resource tables go through SQLAlchemy's SQLite dialect (its DateTime storage format is
    the storage's); ``group_member`` and ``attribute_index`` hold only strings and numbers, which
    need no conversion, so they go straight to the driver.
    """

    def __init__(self, database_url: str):
        self.url = database_url
        self.engine: Engine = create_engine(sync_url(database_url))

    def finish(self) -> None:
        derive_tables(self.url)

    def write(self, batch: Batch) -> None:
        with self.engine.begin() as connection:
            connection.exec_driver_sql("PRAGMA synchronous=OFF")
            for table, rows in ((USERS, batch.users), (GROUPS, batch.groups)):
                if rows:
                    connection.execute(insert(table), rows)
            for table, columns, rows in (
                (MEMBERS, MEMBER_COLUMNS, batch.members),
                (INDEX, INDEX_COLUMNS, batch.index),
            ):
                if rows:
                    marks = ", ".join("?" for _ in columns)
                    connection.exec_driver_sql(
                        f'INSERT INTO "{table.name}" ({", ".join(columns)}) VALUES ({marks})',
                        [tuple(row[c] for c in columns) for row in rows],
                    )

    def close(self) -> None:
        self.engine.dispose()


def _copy_text(value: Any) -> str:
    """A value in COPY's text format."""
    if value is None:
        return "\\N"
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    if any(c in text for c in "\\\t\n\r"):
        text = (
            text.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\r", "\\r")
        )
    return text


class PostgresSink:
    """COPY FROM STDIN (text format); VACUUM ANALYZE at the end, as autovacuum would."""

    def __init__(self, database_url: str):
        import psycopg

        self.url = database_url
        self.connection = psycopg.connect(database_url)

    def write(self, batch: Batch) -> None:
        with self.connection.cursor() as cursor:
            for table, rows in (
                (USERS, batch.users),
                (GROUPS, batch.groups),
                (MEMBERS, batch.members),
                (INDEX, batch.index),
            ):
                if not rows:
                    continue
                columns = list(INDEX_COLUMNS) if table is INDEX else list(rows[0])
                names = ", ".join(f'"{c}"' for c in columns)
                text = "".join(
                    "\t".join(_copy_text(row[c]) for c in columns) + "\n" for row in rows
                )
                with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
                    copy.write(text.encode())
        self.connection.commit()

    def finish(self) -> None:
        derive_tables(self.url)

    def close(self) -> None:
        self.connection.autocommit = True
        self.connection.execute("VACUUM ANALYZE")
        self.connection.close()


class MemorySink:
    """JSON lines of the resources, read by ``bench.inmemory_server`` at start."""

    def __init__(self, path: Path):
        self.file = path.open("w")

    def write(self, batch: Batch) -> None:
        for resource in batch.memory:
            self.file.write(json.dumps(resource, separators=(",", ":")) + "\n")

    def finish(self) -> None:
        pass

    def close(self) -> None:
        self.file.close()


def preload(
    dataset: Dataset,
    sinks: list[Sink],
    *,
    memory: bool,
    processes: int = 1,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Write the whole dataset to every sink (the rows are built once)."""
    done = 0
    try:
        for batch in batches(dataset, memory=memory, processes=processes):
            for sink in sinks:
                sink.write(batch)
            done += len(batch.users) + len(batch.groups)
            if progress is not None:
                progress(done)
        for sink in sinks:
            sink.finish()
    finally:
        for sink in sinks:
            sink.close()


# -- checking the preload against the storage ---------------------------------------------


VOLATILE_COLUMNS = {"created", "last_modified", "last_used"}
VOLATILE_PATHS = {"meta.created", "meta.last_modified"}
# Not compared: schema bookkeeping, tokens, and the change journal, a queue the sync worker
# empties once Coder has the change; the preload stands for a tenant already synced.
NOT_COMPARED = {"alembic_version", "api_token", "sync_change"}


def _snapshot(database_url: str, ids: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every table the storage writes, with ids renamed through ``ids``, leaving out what
    differs between any two writes: timestamps, serial ids, the tree's random version."""
    engine = create_engine(sync_url(database_url))
    tables: dict[str, list[tuple[Any, ...]]] = {}
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as connection:
            for table in metadata.sorted_tables:
                if table.name in NOT_COMPARED:
                    continue
                columns = [
                    c
                    for c in table.columns
                    if c.name not in VOLATILE_COLUMNS
                    and not (c.name == "id" and isinstance(c.type, Integer))
                    and not (table.name == "hierarchy_state" and c.name == "version")
                ]
                rows = []
                for row in connection.execute(select(*columns)):
                    values = tuple(ids.get(v, v) if isinstance(v, str) else v for v in row)
                    if table.name == INDEX.name and row.path in VOLATILE_PATHS:
                        continue
                    rows.append(values)
                tables[table.name] = sorted(rows, key=repr)
    finally:
        engine.dispose()
    return tables


async def _create_through_storage(database_url: str, dataset: Dataset) -> dict[str, str]:
    """Create the dataset with SqlScimStorage.create, as POST does; map its ids to ours."""
    provider = build_provider(Settings())
    service = ScimService(provider)
    database = Database(database_url)
    storage = SqlScimStorage(database, provider)
    types = {rt.id: rt for rt in provider.resource_types}
    ids: dict[str, str] = {}
    try:
        ours: dict[str, str] = {}
        for user_id, payload in dataset.iter_users():
            with provider:
                resource = service.read_creation(types["User"], json.dumps(payload).encode(), None)
            async with storage.operation():
                created = await storage.create(types["User"], resource)
            ids[str(created.id)] = user_id
            ours[user_id] = str(created.id)
        for group_id, payload, member_ids in dataset.iter_groups():
            body = {**payload, "members": [{"value": ours[m], "type": "User"} for m in member_ids]}
            with provider:
                resource = service.read_creation(types["Group"], json.dumps(body).encode(), None)
            async with storage.operation():
                created = await storage.create(types["Group"], resource)
            ids[str(created.id)] = group_id
    finally:
        await database.dispose()
    return ids


def _verify(bulk_url: str, real_url: str, sink: Sink, dataset: Dataset) -> None:
    from scim_bridge.store.migrate import upgrade

    upgrade(bulk_url)
    upgrade(real_url)
    preload(dataset, [sink], memory=False)
    ids = asyncio.run(_create_through_storage(real_url, dataset))
    bulk, real = _snapshot(bulk_url, {}), _snapshot(real_url, ids)
    if bulk.keys() != real.keys():
        raise AssertionError(f"tables differ: {sorted(bulk)} vs {sorted(real)}")
    for table in bulk:
        if bulk[table] != real[table]:
            extra = set(bulk[table]) ^ set(real[table])
            raise AssertionError(
                f"the preload of {table} differs from SqlScimStorage.create: "
                f"{sorted(extra, key=repr)[:5]}"
            )


def verify_preload(pg_admin_url: str | None = None) -> None:
    """Raise AssertionError unless the bulk preload writes what SqlScimStorage.create writes
    (on SQLite, and on PostgreSQL when ``pg_admin_url`` is given)."""
    dataset = Dataset(users=30, groups=4, members=5)
    with tempfile.TemporaryDirectory(prefix="scim-bench-check-") as folder:
        bulk_url = f"sqlite:///{Path(folder) / 'bulk.db'}"
        _verify(bulk_url, f"sqlite:///{Path(folder) / 'storage.db'}", SqliteSink(bulk_url), dataset)
    if pg_admin_url is None:
        return
    with (
        scratch_postgres(pg_admin_url, "check_bulk") as bulk_url,
        scratch_postgres(pg_admin_url, "check_storage") as real_url,
    ):
        _verify(bulk_url, real_url, PostgresSink(bulk_url), dataset)


@contextlib.contextmanager
def scratch_postgres(admin_url: str, label: str, *, keep: bool = False) -> Iterator[str]:
    """A new PostgreSQL database (dropped afterwards unless ``keep``); yields its URL."""
    import psycopg

    name = f"scim_bench_{label}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rsplit('/', 1)[0]}/{name}"
    finally:
        if not keep:
            with psycopg.connect(admin_url, autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
