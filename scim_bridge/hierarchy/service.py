"""The group tree as the application uses it: start-up and reload of the hierarchy file, and
the read models behind `scim-bridge tree/explain` and the admin API."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..config import HierarchySettings
from ..store.db import Database
from ..store.flatten import fold
from ..store.tables import EFFECTIVE, GROUPS, MEMBERS, USERS
from .engine import CycleError, Inheritance, Tree
from .explain import Reason, reasons
from .spec import HierarchyError, HierarchySpec, load_spec

log = logging.getLogger("scim_bridge.hierarchy")


class NotFound(LookupError):
    """No user or group by that id or name; ``kind`` is "user" or "group", ``ref`` the name."""

    def __init__(self, message: str, kind: str = "resource", ref: str = ""):
        super().__init__(message)
        self.kind = kind
        self.ref = ref


@dataclass(frozen=True)
class ReloadOutcome:
    applied: bool
    message: str


class HierarchyService:
    def __init__(self, database: Database, inheritance: Inheritance, settings: HierarchySettings):
        self.database = database
        self.inheritance = inheritance
        self.settings = settings

    def read_file(self) -> HierarchySpec | None:
        """The configured hierarchy file, validated (HierarchyError lists its problems)."""
        return load_spec(self.settings.file) if self.settings.file else None

    async def apply(self, spec: HierarchySpec | None) -> Tree:
        """Put ``spec`` and the naming rule in force; CycleError leaves the tree as it was."""
        async with self.database.transaction(write=True) as connection:
            return await self.inheritance.configure(
                connection, spec, self.settings.naming_delimiter, self.settings.file
            )

    def _sources(self) -> str:
        """The configured sources of the tree, as a message names them."""
        parts = []
        if self.settings.file:
            parts.append(f"hierarchy file {self.settings.file}")
        if self.settings.naming_delimiter:
            parts.append(f"naming rule (naming_delimiter {self.settings.naming_delimiter!r})")
        return " and ".join(parts) or "hierarchy configuration"

    async def start(self) -> None:
        """At start-up: a bad file stops the start, with every problem spelled out."""
        spec = self.read_file()
        try:
            await self.apply(spec)
        except CycleError as error:
            raise HierarchyError(f"{self._sources()} rejected: {error}") from error

    async def reload(self) -> ReloadOutcome:
        """On SIGHUP or POST /admin/api/hierarchy/reload: apply the file again, or keep the
        tree in force and say why."""
        try:
            tree = await self.apply(self.read_file())
        except (HierarchyError, CycleError) as error:
            message = f"{self._sources()} rejected, previous tree kept: {error}"
            log.error(message)
            return ReloadOutcome(False, message)
        message = f"hierarchy in force ({len(tree.graph.edges)} edges, version {tree.version})"
        log.info(message)
        return ReloadOutcome(True, message)

    # -- read models --------------------------------------------------------------------

    async def _tree(self, connection: AsyncConnection) -> Tree:
        return await self.inheritance.tree(connection)

    async def tree_view(self) -> dict[str, Any]:
        """Every group with its parents, children (with each edge's sources) and counts."""
        async with self.database.transaction(write=False) as connection:
            tree = await self._tree(connection)
            direct: dict[str, int] = dict(
                (
                    await connection.execute(
                        select(MEMBERS.c.group_id, func.count())
                        .where(MEMBERS.c.member_type == "User")
                        .group_by(MEMBERS.c.group_id)
                    )
                ).all()
            )
            effective: dict[str, int] = dict(
                (
                    await connection.execute(
                        select(EFFECTIVE.c.group_id, func.count())
                        .join(USERS, USERS.c.id == EFFECTIVE.c.user_id)
                        .where(USERS.c.active.is_(True))
                        .group_by(EFFECTIVE.c.group_id)
                    )
                ).all()
            )
        graph, groups = tree.graph, tree.inputs.groups
        nodes = []
        for group_id in sorted(groups, key=lambda g: groups[g].display_name.lower()):
            nodes.append(
                {
                    "id": group_id,
                    "displayName": groups[group_id].display_name,
                    "externalId": groups[group_id].external_id,
                    "cascade": group_id in graph.cascading,
                    "parents": sorted(graph.parents.get(group_id, ())),
                    "children": [
                        {"id": child, "sources": sorted(graph.edges[(group_id, child)])}
                        for child in sorted(graph.children.get(group_id, ()))
                    ],
                    "directMembers": direct.get(group_id, 0),
                    "effectiveMembers": effective.get(group_id, 0),
                }
            )
        roots = [n["id"] for n in nodes if not n["parents"]]
        return {"version": tree.version, "roots": roots, "groups": nodes}

    async def find_group(self, connection: AsyncConnection, ref: str) -> Any:
        row = (
            await connection.execute(
                select(GROUPS.c.id, GROUPS.c.display_name, GROUPS.c.external_id).where(
                    or_(
                        GROUPS.c.id == ref,
                        GROUPS.c.display_name_key == fold(ref, False),
                        GROUPS.c.external_id == ref,
                    )
                )
            )
        ).first()
        if row is None:
            raise NotFound(f"no group with id, displayName or externalId {ref!r}", "group", ref)
        return row

    async def find_user(self, connection: AsyncConnection, ref: str) -> Any:
        row = (
            await connection.execute(
                select(USERS.c.id, USERS.c.user_name, USERS.c.active).where(
                    or_(
                        USERS.c.id == ref,
                        USERS.c.user_name_key == fold(ref, False),
                        USERS.c.external_id == ref,
                    )
                )
            )
        ).first()
        if row is None:
            raise NotFound(f"no user with id, userName or externalId {ref!r}", "user", ref)
        return row

    async def _direct_groups(
        self, connection: AsyncConnection, user_ids: list[str]
    ) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {u: set() for u in user_ids}
        rows = await connection.execute(
            select(MEMBERS.c.member_id, MEMBERS.c.group_id).where(
                MEMBERS.c.member_id.in_(user_ids), MEMBERS.c.member_type == "User"
            )
        )
        for user_id, group_id in rows:
            result[user_id].add(group_id)
        return result

    @staticmethod
    def _reasons(reason_list: list[Reason], names: dict[str, str]) -> list[dict[str, Any]]:
        """Reasons in a stable order: direct, then via (by the names on the path), then cascade."""
        order = {"direct": 0, "via": 1, "cascade": 2}
        spelled = [
            {"kind": r.kind, "path": [names.get(g, g) for g in r.path], "text": r.describe(names)}
            for r in reason_list
        ]
        return sorted(spelled, key=lambda r: (order[r["kind"]], [p.lower() for p in r["path"]]))

    async def group_view(self, ref: str, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """A group's direct members, and a page of its effective members with reasons."""
        async with self.database.transaction(write=False) as connection:
            tree = await self._tree(connection)
            group = await self.find_group(connection, ref)
            direct_rows = (
                await connection.execute(
                    select(MEMBERS.c.member_id, MEMBERS.c.member_type, USERS.c.user_name)
                    .outerjoin(
                        USERS,
                        (USERS.c.id == MEMBERS.c.member_id) & (MEMBERS.c.member_type == "User"),
                    )
                    .where(MEMBERS.c.group_id == group.id)
                )
            ).all()
            effective_query = (
                select(USERS.c.id, USERS.c.user_name)
                .join(EFFECTIVE, EFFECTIVE.c.user_id == USERS.c.id)
                .where(EFFECTIVE.c.group_id == group.id, USERS.c.active.is_(True))
            )
            total = (
                await connection.execute(
                    select(func.count()).select_from(effective_query.subquery())
                )
            ).scalar_one()
            page = (
                await connection.execute(
                    effective_query.order_by(USERS.c.user_name_key).offset(offset).limit(limit)
                )
            ).all()
            direct_groups = await self._direct_groups(connection, [u.id for u in page])
        names = {g.id: g.display_name for g in tree.inputs.groups.values()}
        members = [
            {
                "id": user.id,
                "userName": user.user_name,
                "reasons": self._reasons(
                    reasons(tree.graph, direct_groups[user.id], group.id), names
                ),
            }
            for user in page
        ]
        return {
            "id": group.id,
            "displayName": group.display_name,
            "externalId": group.external_id,
            "cascade": group.id in tree.graph.cascading,
            "parents": [
                {"id": p, "displayName": names.get(p, p)}
                for p in sorted(tree.graph.parents.get(group.id, ()))
            ],
            "directMembers": sorted(
                (
                    {"id": m, "type": t, "display": names.get(m) if t == "Group" else user_name}
                    for m, t, user_name in direct_rows
                ),
                key=lambda m: (m["type"], (m["display"] or "").lower(), m["id"]),
            ),
            "effectiveMembers": {
                "totalResults": total,
                "startIndex": offset + 1,
                "itemsPerPage": len(members),
                "Resources": members,
            },
        }

    async def user_view(self, ref: str, group_ref: str | None = None) -> dict[str, Any]:
        """Every group a user is effectively in (or one group), each with its reasons."""
        async with self.database.transaction(write=False) as connection:
            tree = await self._tree(connection)
            user = await self.find_user(connection, ref)
            only = (await self.find_group(connection, group_ref)).id if group_ref else None
            direct = (await self._direct_groups(connection, [user.id]))[user.id]
            query = select(EFFECTIVE.c.group_id).where(EFFECTIVE.c.user_id == user.id)
            if only is not None:
                query = query.where(EFFECTIVE.c.group_id == only)
            effective = set((await connection.execute(query)).scalars())
        names = {g.id: g.display_name for g in tree.inputs.groups.values()}
        groups = [
            {
                "id": g,
                "displayName": names.get(g, g),
                "reasons": self._reasons(reasons(tree.graph, direct, g), names),
            }
            for g in sorted(effective, key=lambda g: (names.get(g) or g).lower())
        ]
        view: dict[str, Any] = {
            "id": user.id,
            "userName": user.user_name,
            "active": bool(user.active),
            "groups": groups if user.active else [],
        }
        if not user.active:
            view["note"] = (
                "deactivated: no effective memberships; its stored memberships are kept "
                f"({len(groups)} group{'' if len(groups) == 1 else 's'} when re-activated)"
            )
        return view
