"""The SQL storage behind scim2-server: SCIM resources in and out of the tables.

scim2-server's handler validates requests, applies PUT and PATCH and builds responses; it calls
this storage between those steps. Each SCIM request runs in one transaction
(:meth:`SqlScimStorage.operation`): a request that writes takes the write lock (SQLite) or
locks the resource row (PostgreSQL) before it reads, so concurrent PATCHes of one group
serialize instead of losing each other's members.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, cast

from scim2_models import (
    InvalidFilterException,
    InvalidValueException,
    Meta,
    NotFoundException,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    ScimProvider,
    SearchRequest,
    UniquenessException,
)
from scim2_server.storage import AsyncScimStorage, SearchPage
from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    String,
    Table,
    and_,
    delete,
    func,
    insert,
    literal,
    null,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ..hierarchy.engine import CycleError, GroupInfo, Inheritance, Tree
from . import journal
from .db import Database
from .filters import filter_condition
from .flatten import SORT_PREFIX, attribute_key, extension_of, flatten, fold
from .tables import EFFECTIVE, GROUPS, INDEX, MEMBERS, USERS

STORED_ELSEWHERE = ("id", "meta", "members", "groups", "password")

_connection: ContextVar[AsyncConnection | None] = ContextVar("scim_connection", default=None)
_write_intent: ContextVar[bool] = ContextVar("scim_write_intent", default=False)


def declare_write_intent(write: bool) -> None:
    """Tell the next :meth:`SqlScimStorage.operation` of this task whether it will write."""
    _write_intent.set(write)


def now() -> datetime:
    return datetime.now(UTC)


def etag(version: int) -> str:
    return f'W/"{version}"'


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _excludes(parameters: ResponseParameters[Any] | None, attribute: str) -> bool:
    """Whether a response leaves out the whole of ``attribute`` (so it need not be loaded)."""
    if parameters is None:
        return False

    def names(paths: Any) -> list[str]:
        return [str(path).rsplit(":", 1)[-1].lower() for path in paths or []]

    wanted = names(parameters.attributes)
    if wanted:
        return not any(name.split(".")[0] == attribute.lower() for name in wanted)
    return attribute.lower() in names(parameters.excluded_attributes)


class SqlScimStorage(AsyncScimStorage):
    """Users and Groups in SQLite or PostgreSQL."""

    supports_cursors = False

    def __init__(
        self, database: Database, provider: ScimProvider, inheritance: Inheritance | None = None
    ):
        self.database = database
        self.provider = provider
        self.inheritance = inheritance or Inheritance(database)
        self.models = {
            rt.id: cast(type[Resource[Any]], provider.model_for(rt))
            for rt in provider.resource_types
        }

    # -- transactions -------------------------------------------------------------

    @asynccontextmanager
    async def operation(self) -> AsyncIterator[None]:  # type: ignore[override]
        if _connection.get() is not None:
            yield
            return
        async with self.database.transaction(write=_write_intent.get()) as connection:
            token = _connection.set(connection)
            try:
                yield
            finally:
                _connection.reset(token)

    @asynccontextmanager
    async def _connect(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        current = _connection.get()
        if current is not None:
            yield current
            return
        async with self.database.transaction(write=write) as connection:
            yield connection

    # -- reading ------------------------------------------------------------------

    def _table(self, resource_type: ResourceType) -> Table:
        if resource_type.id == "User":
            return USERS
        if resource_type.id == "Group":
            return GROUPS
        raise NotFoundException(detail=f"No resource type {resource_type.id!r}")

    async def _row(
        self,
        connection: AsyncConnection,
        resource_type: ResourceType,
        resource_id: str,
        *,
        lock: bool,
    ) -> Any:
        table = self._table(resource_type)
        query = select(table).where(table.c.id == resource_id)
        if lock and not self.database.is_sqlite:
            query = query.with_for_update()
        row = (await connection.execute(query)).first()
        if row is None:
            raise NotFoundException(detail=f"{resource_type.name} {resource_id} not found")
        return row

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        async with self._connect(write=False) as connection:
            row = await self._row(connection, resource_type, resource_id, lock=_write_intent.get())
            resources = await self._build(connection, resource_type, [row], response_parameters)
            return resources[0]

    async def _build(
        self,
        connection: AsyncConnection,
        resource_type: ResourceType,
        rows: Sequence[Any],
        response_parameters: ResponseParameters[Any] | None,
    ) -> list[Resource[Any]]:
        model = self.models[resource_type.id]
        ids = [row.id for row in rows]
        related: dict[str, list[dict[str, Any]]] = {}
        if resource_type.id == "Group" and not _excludes(response_parameters, "members"):
            related = await self._members_of(connection, ids)
        if resource_type.id == "User" and not _excludes(response_parameters, "groups"):
            related = await self._groups_of(connection, ids)
        resources = []
        for row in rows:
            data = json.loads(row.data)
            data["id"] = row.id
            if resource_type.id == "Group" and row.id in related:
                data["members"] = related[row.id]
            if resource_type.id == "User" and row.id in related:
                data["groups"] = related[row.id]
            resource = model.model_validate(data)
            resource.meta = Meta(
                resource_type=resource_type.name,
                created=_as_utc(row.created),
                last_modified=_as_utc(row.last_modified),
                version=etag(row.version),
            )
            resources.append(resource)
        return resources

    async def _members_of(
        self, connection: AsyncConnection, group_ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Members with their ``display``: as the client sent it (immutable, RFC 7643 §2.4),
        else the member's current name."""
        users = (
            select(
                MEMBERS.c.group_id,
                MEMBERS.c.member_id,
                func.coalesce(MEMBERS.c.display, USERS.c.display_name, USERS.c.user_name),
            )
            .join(USERS, USERS.c.id == MEMBERS.c.member_id)
            .where(MEMBERS.c.group_id.in_(group_ids), MEMBERS.c.member_type == "User")
        )
        groups = (
            select(
                MEMBERS.c.group_id,
                MEMBERS.c.member_id,
                func.coalesce(MEMBERS.c.display, GROUPS.c.display_name),
            )
            .join(GROUPS, GROUPS.c.id == MEMBERS.c.member_id)
            .where(MEMBERS.c.group_id.in_(group_ids), MEMBERS.c.member_type == "Group")
        )
        result: dict[str, list[dict[str, Any]]] = {gid: [] for gid in group_ids}
        for kind, query in (("User", users), ("Group", groups)):
            for group_id, member_id, display in await connection.execute(query):
                result[group_id].append(
                    {
                        "value": member_id,
                        "type": kind,
                        "display": display,
                        "$ref": f"{kind}s/{member_id}",
                    }
                )
        for members in result.values():
            members.sort(key=lambda m: (m["type"], m["value"]))
        return result

    async def _groups_of(
        self, connection: AsyncConnection, user_ids: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """Each user's groups: "direct" ones, and "indirect" ones it inherits through the tree
        (hierarchy/engine.py keeps them in effective_member) while it is active."""
        direct = {
            (user_id, group_id)
            for user_id, group_id in await connection.execute(
                select(MEMBERS.c.member_id, MEMBERS.c.group_id).where(
                    MEMBERS.c.member_id.in_(user_ids), MEMBERS.c.member_type == "User"
                )
            )
        }
        rows = await connection.execute(
            select(EFFECTIVE.c.user_id, EFFECTIVE.c.group_id, GROUPS.c.display_name, USERS.c.active)
            .join(GROUPS, GROUPS.c.id == EFFECTIVE.c.group_id)
            .join(USERS, USERS.c.id == EFFECTIVE.c.user_id)
            .where(EFFECTIVE.c.user_id.in_(user_ids))
        )
        result: dict[str, list[dict[str, Any]]] = {}
        for user_id, group_id, display, active in rows:
            kind = "direct" if (user_id, group_id) in direct else "indirect"
            if kind == "indirect" and not active:
                continue  # a deactivated user inherits nothing; its direct groups are kept
            result.setdefault(user_id, []).append(
                {"value": group_id, "display": display, "type": kind, "$ref": f"Groups/{group_id}"}
            )
        for groups in result.values():
            groups.sort(key=lambda g: (g["type"] != "direct", g["display"] or "", g["value"]))
        return result

    # -- searching ----------------------------------------------------------------

    async def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        """One page of the matching resources: filtered, sorted and paged by the database.
        Several resource types (a search at the root) are searched as one collection."""
        ranked = [self._ranked(rt, search_request) for rt in resource_types]
        start = max((search_request.start_index or 1) - 1, 0)
        count = search_request.count
        descending = search_request.sort_order == SearchRequest.SortOrder.descending
        async with self._connect(write=False) as connection:
            total = 0
            for matching in ranked:
                counted = select(func.count()).select_from(matching.subquery())
                total += (await connection.execute(counted)).scalar_one()
            page: list[Any] = []
            if count is None or count > 0:
                keys = (ranked[0] if len(ranked) == 1 else union_all(*ranked)).subquery()
                order = (
                    _order(keys, descending)
                    if search_request.sort_by is not None
                    else [keys.c.created.asc(), keys.c.id.asc()]  # uses ix_*_created
                )
                query: Select[Any] = select(keys.c.resource_type, keys.c.id).order_by(*order)
                query = query.offset(start) if count is None else query.offset(start).limit(count)
                page = list((await connection.execute(query)).all())
            parameters: ResponseParameters[Any] | None = (
                ResponseParameters(
                    attributes=search_request.attributes,
                    excluded_attributes=search_request.excluded_attributes,
                )
                if (search_request.attributes or search_request.excluded_attributes)
                else None
            )
            found: dict[tuple[str, str], Resource[Any]] = {}
            for resource_type in resource_types:
                ids = [rid for kind, rid in page if kind == resource_type.id]
                if not ids:
                    continue
                table = self._table(resource_type)
                rows = (await connection.execute(select(table).where(table.c.id.in_(ids)))).all()
                built = await self._build(connection, resource_type, rows, parameters)
                found.update({(str(resource_type.id), str(r.id)): r for r in built})
        return SearchPage(total=total, resources=[found[(kind, rid)] for kind, rid in page])

    def _ranked(
        self, resource_type: ResourceType, search_request: SearchRequest[Any]
    ) -> Select[Any]:
        """The matching resources of one type, with what they sort by."""
        table = self._table(resource_type)
        model = self.models[resource_type.id]
        conditions: list[ColumnElement[bool]] = []
        if search_request.filter is not None:
            try:
                conditions.append(
                    filter_condition(
                        model, str(resource_type.id), table.c.id, search_request.filter.ast
                    )
                )
            except (TypeError, ValueError) as error:
                raise InvalidFilterException(detail=str(error)) from error
        text, number = self._sort_values(table, model, search_request)
        return select(
            literal(resource_type.id, String).label("resource_type"),
            table.c.id.label("id"),
            table.c.created.label("created"),
            text.label("sort_text"),
            number.label("sort_number"),
        ).where(*conditions)

    def _sort_values(
        self, table: Table, model: type[Resource[Any]], search_request: SearchRequest[Any]
    ) -> tuple[Any, Any]:
        """(text, number) a resource sorts by (RFC 7644 §3.4.2.3); NULLs when it has none."""
        nothing = (null().cast(String), null().cast(Float))
        if search_request.sort_by is None:
            return nothing
        binding = search_request.sort_binding(model)
        if binding is None:
            return nothing
        if binding.field_name == "id" and not extension_of(binding.model):
            return table.c.id, null().cast(Float)
        sub = binding.sub_field_name
        complex_entries = hasattr(binding.field_type, "model_fields")
        if binding.is_multivalued and sub is None and complex_entries:
            sub = "value"  # a complex multi-valued attribute sorts on its value
        key = attribute_key(extension_of(binding.model), binding.field_name, sub)
        if binding.is_multivalued:
            key = SORT_PREFIX + key  # the primary entry, else the first (see flatten.py)
        index = INDEX.alias()
        where = (index.c.resource_id == table.c.id, index.c.path == key)
        text = select(index.c.text).where(*where).limit(1).scalar_subquery()
        number = select(index.c.number).where(*where).limit(1).scalar_subquery()
        return text, number

    # -- writing ------------------------------------------------------------------

    def _stored_data(self, resource: Resource[Any]) -> str:
        data = resource.model_dump(mode="json")
        for key in STORED_ELSEWHERE:
            data.pop(key, None)
        return json.dumps(data, separators=(",", ":"))

    def _keys(self, resource_type: ResourceType, resource: Resource[Any]) -> dict[str, Any]:
        external_id = getattr(resource, "external_id", None)
        if resource_type.id == "User":
            user_name = cast(str, resource.user_name)  # type: ignore[attr-defined]
            return {
                "user_name": user_name,
                "user_name_key": fold(user_name, False),
                "display_name": getattr(resource, "display_name", None),
                "external_id": external_id,
                "active": resource.active is not False,  # type: ignore[attr-defined]
            }
        display_name = cast(str, resource.display_name)  # type: ignore[attr-defined]
        if not display_name:
            raise InvalidValueException(detail="displayName is required for a Group")
        return {
            "display_name": display_name,
            "display_name_key": fold(display_name, False),
            "external_id": external_id,
        }

    async def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        table = self._table(resource_type)
        resource_id = str(uuid.uuid4())
        stamp = now()
        keys = self._keys(resource_type, resource)
        async with self._connect(write=True) as connection:
            members = await self._checked_members(connection, resource_type, resource)
            tree = None
            if members is not None:
                tree = await self._restructure(
                    connection, resource_id, keys, _groups_in(members), removed=False
                )
            try:
                await connection.execute(
                    insert(table).values(
                        id=resource_id,
                        data=self._stored_data(resource),
                        version=1,
                        created=stamp,
                        last_modified=stamp,
                        **keys,
                    )
                )
            except IntegrityError as error:
                raise self._uniqueness(resource_type, resource) from error
            if members and tree is not None:
                await self._insert_members(connection, resource_id, members, _displays(resource))
                await self.inheritance.members_changed(
                    connection, tree, resource_id, added=_users_in(members)
                )
            created = await self._reload(connection, resource_type, resource_id)
            await self._reindex(connection, resource_type, created)
            await journal.record(connection, _kind(resource_type), [resource_id])
            return created

    async def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        table = self._table(resource_type)
        resource_id = cast(str, resource.id)
        keys = self._keys(resource_type, resource)
        async with self._connect(write=True) as connection:
            row = await self._row(connection, resource_type, resource_id, lock=True)
            self._check_version(row, expected_version)
            data = self._stored_data(resource)
            current = members = None
            if resource_type.id == "Group":
                current = await self._current_members(connection, resource_id)
                members = await self._checked_members(connection, resource_type, resource, current)
            if data == row.data and members == current:
                # Nothing changed (e.g. Entra re-sending an add): keep the version and ETag.
                return await self._reload(connection, resource_type, resource_id)
            if current is not None and members is not None:
                await self._update_members(
                    connection, row, keys, current, members, _displays(resource)
                )
            try:
                await connection.execute(
                    update(table)
                    .where(table.c.id == resource_id)
                    .values(
                        data=data,
                        version=row.version + 1,
                        last_modified=now(),
                        **keys,
                    )
                )
            except IntegrityError as error:
                raise self._uniqueness(resource_type, resource) from error
            updated = await self._reload(connection, resource_type, resource_id)
            await self._reindex(connection, resource_type, updated)
            if data != row.data:
                await journal.record(connection, _kind(resource_type), [resource_id])
            if resource_type.id == "User":
                await self._touch_groups_of(connection, resource_id)
            return updated

    async def delete(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        expected_version: str | None = None,
    ) -> None:
        table = self._table(resource_type)
        async with self._connect(write=True) as connection:
            row = await self._row(connection, resource_type, resource_id, lock=True)
            self._check_version(row, expected_version)
            if resource_type.id == "Group":
                await self._restructure(connection, resource_id, {}, set(), removed=True)
                await self.inheritance.group_deleted(connection, resource_id)
                await connection.execute(delete(MEMBERS).where(MEMBERS.c.group_id == resource_id))
            else:
                await self.inheritance.tree(connection, lock="share")
                groups = await connection.execute(
                    select(EFFECTIVE.c.group_id).where(EFFECTIVE.c.user_id == resource_id)
                )
                await journal.record(connection, "group", groups.scalars())
                await self.inheritance.user_deleted(connection, resource_id)
            await journal.record(connection, _kind(resource_type), [resource_id])
            await self._touch_groups_of(connection, resource_id)
            await connection.execute(delete(MEMBERS).where(MEMBERS.c.member_id == resource_id))
            await connection.execute(delete(INDEX).where(INDEX.c.resource_id == resource_id))
            await connection.execute(delete(table).where(table.c.id == resource_id))

    @staticmethod
    def _check_version(row: Any, expected_version: str | None) -> None:
        if expected_version is not None and expected_version != etag(row.version):
            raise PreconditionFailedException(
                detail=f"the resource is at version {etag(row.version)}, not {expected_version}"
            )

    def _uniqueness(
        self, resource_type: ResourceType, resource: Resource[Any]
    ) -> UniquenessException:
        if resource_type.id == "User":
            taken = f"userName {resource.user_name!r}"  # type: ignore[attr-defined]
        else:
            taken = f"displayName {resource.display_name!r}"  # type: ignore[attr-defined]
        return UniquenessException(detail=f"{taken} is already taken (compared case-insensitively)")

    async def _reload(
        self, connection: AsyncConnection, resource_type: ResourceType, resource_id: str
    ) -> Resource[Any]:
        row = await self._row(connection, resource_type, resource_id, lock=False)
        return (await self._build(connection, resource_type, [row], None))[0]

    async def _reindex(
        self, connection: AsyncConnection, resource_type: ResourceType, resource: Resource[Any]
    ) -> None:
        await connection.execute(delete(INDEX).where(INDEX.c.resource_id == resource.id))
        rows = [
            {
                "resource_type": resource_type.id,
                "resource_id": resource.id,
                "path": value.path,
                "item": value.item,
                "kind": value.kind,
                "text": value.text,
                "number": value.number,
            }
            for value in flatten(resource)
        ]
        if rows:
            await connection.execute(insert(INDEX), rows)

    async def _touch_groups_of(self, connection: AsyncConnection, member_id: str) -> None:
        """A member's change changes its groups' representation: bump their versions."""
        await connection.execute(
            update(GROUPS)
            .where(
                GROUPS.c.id.in_(select(MEMBERS.c.group_id).where(MEMBERS.c.member_id == member_id))
            )
            .values(version=GROUPS.c.version + 1, last_modified=now())
        )

    # -- group members and the tree ----------------------------------------------------

    async def _checked_members(
        self,
        connection: AsyncConnection,
        resource_type: ResourceType,
        resource: Resource[Any],
        known: dict[str, str] | None = None,
    ) -> dict[str, str] | None:
        """{member id: "User"|"Group"} of a group, every new id checked to exist (``known``:
        the current members, which exist: deletions remove memberships)."""
        if resource_type.id != "Group":
            return None
        entries = getattr(resource, "members", None) or []
        wanted: dict[str, str | None] = {}
        for entry in entries:
            referenced = _referenced(entry.ref)
            value = entry.value or (referenced[1] if referenced else None)
            if not value:
                raise InvalidValueException(
                    detail="a member has no value (the member's id) and no $ref to "
                    "/Users/{id} or /Groups/{id}"
                )
            declared = entry.type.capitalize() if isinstance(entry.type, str) else None
            if declared is None and referenced is not None:
                declared = referenced[0]
            if referenced is not None and (referenced[1], referenced[0]) != (
                value,
                declared or referenced[0],
            ):
                raise InvalidValueException(
                    detail=f"member {value}: its $ref {entry.ref} names another resource"
                )
            entry.value = value
            if declared not in (None, "User", "Group"):
                raise InvalidValueException(
                    detail=f"member {entry.value}: type must be User or Group, not {entry.type!r}"
                )
            wanted[value] = declared
        known = known or {}
        new_ids = [member_id for member_id in wanted if member_id not in known]
        users, groups = set(), set()
        for ids in chunked(new_ids):
            users |= set(
                (await connection.execute(select(USERS.c.id).where(USERS.c.id.in_(ids)))).scalars()
            )
            groups |= set(
                (
                    await connection.execute(select(GROUPS.c.id).where(GROUPS.c.id.in_(ids)))
                ).scalars()
            )
        members: dict[str, str] = {}
        for member_id, declared in wanted.items():
            found = known.get(member_id) or (
                "User" if member_id in users else "Group" if member_id in groups else None
            )
            if found is None or (declared is not None and declared != found):
                kind = declared or "User or Group"
                raise InvalidValueException(
                    detail=f"member {member_id} is not an existing {kind}; "
                    "create it first or remove it from members"
                )
            members[member_id] = found
        return members

    async def _restructure(
        self,
        connection: AsyncConnection,
        group_id: str,
        keys: dict[str, Any],
        child_groups: set[str],
        *,
        removed: bool,
    ) -> Tree:
        """Apply a change of the tree (a group created, renamed, deleted, or its member
        groups changed); a cycle through any source is refused naming it."""
        before = await self.inheritance.tree(connection, lock="update")
        if removed:
            inputs = before.inputs.without_group(group_id)
        else:
            info = GroupInfo(group_id, keys["display_name"], keys["external_id"])
            inputs = before.inputs.with_group(info, child_groups)
        try:
            return await self.inheritance.change_structure(
                connection, before, inputs, focus=group_id
            )
        except CycleError as error:
            raise InvalidValueException(detail=str(error)) from error

    async def _current_members(self, connection: AsyncConnection, group_id: str) -> dict[str, str]:
        rows = await connection.execute(
            select(MEMBERS.c.member_id, MEMBERS.c.member_type).where(MEMBERS.c.group_id == group_id)
        )
        return {member_id: member_type for member_id, member_type in rows}

    async def _update_members(
        self,
        connection: AsyncConnection,
        row: Any,
        keys: dict[str, Any],
        current: dict[str, str],
        members: dict[str, str],
        displays: dict[str, str],
    ) -> None:
        """Write the difference only: big groups change by a member or two at a time."""
        removed = current.keys() - members.keys()
        added = {m: t for m, t in members.items() if m not in current}
        renamed = (row.display_name_key, row.external_id) != (
            keys["display_name_key"],
            keys["external_id"],
        )
        if renamed or _groups_in(added) or _groups_in({m: current[m] for m in removed}):
            tree = await self._restructure(
                connection, row.id, keys, _groups_in(members), removed=False
            )
        else:
            tree = await self.inheritance.tree(connection, lock="share")
        for ids in chunked(sorted(removed)):
            await connection.execute(
                delete(MEMBERS).where(
                    and_(MEMBERS.c.group_id == row.id, MEMBERS.c.member_id.in_(ids))
                )
            )
        await self._insert_members(connection, row.id, added, displays)
        await self.inheritance.members_changed(
            connection,
            tree,
            row.id,
            added=_users_in(added),
            removed=_users_in({m: current[m] for m in removed}),
        )

    async def _insert_members(
        self,
        connection: AsyncConnection,
        group_id: str,
        members: dict[str, str],
        displays: dict[str, str],
    ) -> None:
        if members:
            await connection.execute(
                insert(MEMBERS),
                [
                    {
                        "group_id": group_id,
                        "member_id": m,
                        "member_type": t,
                        "display": displays.get(m),
                    }
                    for m, t in members.items()
                ],
            )


def _order(keys: Any, descending: bool) -> list[Any]:
    """Missing values last when ascending and first when descending, as RFC 7644 §3.4.2.3
    says; equal values keep the stable order (creation, then id) either way."""
    missing = and_(keys.c.sort_text.is_(None), keys.c.sort_number.is_(None))
    values = [missing, keys.c.sort_text, keys.c.sort_number]
    ordered = [v.desc() for v in values] if descending else [v.asc() for v in values]
    return [*ordered, keys.c.created.asc(), keys.c.id.asc()]


def _referenced(ref: Any) -> tuple[str, str] | None:
    """("User" | "Group", id) of a member's ``$ref`` (…/Users/{id} or …/Groups/{id})."""
    if not ref:
        return None
    parts = str(ref).rstrip("/").split("/")
    if len(parts) < 2 or parts[-2] not in ("Users", "Groups"):
        return None
    return parts[-2][:-1], parts[-1]


def _displays(resource: Resource[Any]) -> dict[str, str]:
    """The ``display`` a client gave each member, where it gave one."""
    entries = getattr(resource, "members", None) or []
    return {e.value: e.display for e in entries if e.value and e.display}


def _kind(resource_type: ResourceType) -> str:
    return "user" if resource_type.id == "User" else "group"


def chunked(items: list[str], size: int = 500) -> list[list[str]]:
    """Split long IN lists: SQLite and PostgreSQL cap the parameters of one statement."""
    return [items[start : start + size] for start in range(0, len(items), size)]


def _users_in(members: dict[str, str]) -> set[str]:
    return {m for m, kind in members.items() if kind == "User"}


def _groups_in(members: dict[str, str]) -> set[str]:
    return {m for m, kind in members.items() if kind == "Group"}


__all__ = ["SqlScimStorage", "declare_write_intent", "etag"]
