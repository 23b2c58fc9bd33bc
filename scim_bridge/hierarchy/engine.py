"""Effective memberships, kept up to date in the transaction of each SCIM write.

``effective_member(group, user, sources)`` counts, for each group G and user u, the groups
X in sources(G) that u is a direct member of (hierarchy/graph.py). A member added to group D
adds 1 to (R, u) for every R in receivers(D) — D, its ancestors, and its descendants when D
cascades — so a change deep in the tree touches only the groups it affects. A change of the
tree's structure adds or subtracts whole source groups: set-based SQL, per affected group.

Concurrency: the ``hierarchy_state`` row orders structure changes (``FOR UPDATE``) against
member changes (``FOR SHARE``) on PostgreSQL; SQLite has a single writer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    cast,
    column,
    delete,
    func,
    insert,
    literal,
    select,
    table,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from ..store import journal
from ..store.db import Database
from ..store.flatten import fold
from ..store.tables import EFFECTIVE, GROUPS, HIERARCHY_STATE, MEMBERS, USERS
from .graph import EdgeSource, GroupGraph
from .spec import GroupRef, HierarchySpec, parse_spec

CHUNK = 400


class CycleError(ValueError):
    """A change would make a group its own ancestor; ``names`` spells the cycle."""

    def __init__(self, names: list[str]):
        self.names = names
        super().__init__(
            "this would make a cycle: " + " → ".join(names) + "; a group cannot contain its own "
            "ancestor"
        )


@dataclass(frozen=True)
class GroupInfo:
    id: str
    display_name: str
    external_id: str | None

    @property
    def name_key(self) -> str:
        return fold(self.display_name, False)


@dataclass(frozen=True)
class TreeInputs:
    """Everything the tree is computed from."""

    groups: dict[str, GroupInfo] = field(default_factory=dict)
    scim_edges: frozenset[tuple[str, str]] = frozenset()
    spec: HierarchySpec | None = None
    delimiter: str | None = None

    def resolver(self) -> dict[tuple[str, str], str]:
        keys: dict[tuple[str, str], str] = {}
        for group in self.groups.values():
            keys[("name", group.name_key)] = group.id
            if group.external_id:
                keys[("external", group.external_id)] = group.id
        return keys

    def build(self) -> GroupGraph:
        edges: list[tuple[str, str, EdgeSource]] = [
            (p, c, EdgeSource.SCIM) for p, c in self.scim_edges
        ]
        keys = self.resolver()
        cascading: list[str] = []
        if self.spec is not None:
            for parent, child in self.spec.edges():
                p, c = keys.get(parent.key), keys.get(child.key)
                if p is not None and c is not None:
                    edges.append((p, c, EdgeSource.FILE))
            cascading = [g for ref in self.spec.cascading() if (g := keys.get(ref.key))]
        if self.delimiter:
            for group in self.groups.values():
                head, sep, _ = group.display_name.rpartition(self.delimiter)
                named_parent = keys.get(("name", fold(head, False))) if sep and head else None
                if named_parent is not None and named_parent != group.id:
                    edges.append((named_parent, group.id, EdgeSource.NAME))
        return GroupGraph.build(edges, cascading)

    def with_group(self, group: GroupInfo, child_groups: Iterable[str]) -> TreeInputs:
        groups = {**self.groups, group.id: group}
        kept = {(p, c) for p, c in self.scim_edges if p != group.id}
        return replace(
            self, groups=groups, scim_edges=frozenset(kept | {(group.id, c) for c in child_groups})
        )

    def without_group(self, group_id: str) -> TreeInputs:
        groups = {k: v for k, v in self.groups.items() if k != group_id}
        edges = frozenset((p, c) for p, c in self.scim_edges if group_id not in (p, c))
        return replace(self, groups=groups, scim_edges=edges)

    def names(self, ids: Sequence[str]) -> list[str]:
        return [self.groups[g].display_name if g in self.groups else g for g in ids]


@dataclass(frozen=True)
class Tree:
    """A snapshot of the tree: its inputs and the graph built from them."""

    version: str
    inputs: TreeInputs
    graph: GroupGraph


class Inheritance:
    """The tree, cached per process, and the effective-membership table."""

    def __init__(self, database: Database):
        self.database = database
        self._tree: Tree | None = None

    # -- the tree -------------------------------------------------------------------

    async def _state(self, connection: AsyncConnection, lock: str | None) -> Any:
        query = select(HIERARCHY_STATE).where(HIERARCHY_STATE.c.id == 1)
        if lock and not self.database.is_sqlite:
            query = query.with_for_update(read=lock == "share")
        row = (await connection.execute(query)).first()
        if row is None:
            raise RuntimeError("hierarchy_state is missing: run `scim-bridge db upgrade`")
        return row

    async def tree(self, connection: AsyncConnection, *, lock: str | None = None) -> Tree:
        """The current tree; ``lock`` is "share" before member changes, "update" before
        structure changes."""
        state = await self._state(connection, lock)
        cached = self._tree
        if cached is not None and cached.version == state.version:
            return cached
        inputs = await self._load_inputs(connection, state.spec, state.naming_delimiter)
        tree = Tree(state.version, inputs, inputs.build())
        self._tree = tree
        return tree

    async def _load_inputs(
        self, connection: AsyncConnection, spec_json: str | None, delimiter: str | None
    ) -> TreeInputs:
        groups = {
            row.id: GroupInfo(row.id, row.display_name, row.external_id)
            for row in await connection.execute(
                select(GROUPS.c.id, GROUPS.c.display_name, GROUPS.c.external_id)
            )
        }
        edges = frozenset(
            (row.group_id, row.member_id)
            for row in await connection.execute(
                select(MEMBERS.c.group_id, MEMBERS.c.member_id).where(
                    MEMBERS.c.member_type == "Group"
                )
            )
        )
        spec = HierarchySpec.model_validate_json(spec_json) if spec_json else None
        return TreeInputs(groups, edges, spec, delimiter)

    async def change_structure(
        self,
        connection: AsyncConnection,
        before: Tree,
        inputs: TreeInputs,
        focus: str | None = None,
    ) -> Tree:
        """Move from ``before`` to the tree of ``inputs``: refuse a cycle, then add and
        subtract the source groups that changed. Call it before the direct memberships of
        the change are written (the deltas read them as they were)."""
        graph = inputs.build()
        cycle = graph.find_cycle()
        if cycle is not None:
            raise CycleError(inputs.names(_starting_at(cycle, focus)))
        deltas = _source_deltas(before, inputs, graph)
        await self._apply_source_deltas(connection, deltas)
        version = uuid.uuid4().hex
        await connection.execute(
            update(HIERARCHY_STATE)
            .where(HIERARCHY_STATE.c.id == 1)
            .values(
                version=version,
                spec=inputs.spec.model_dump_json(by_alias=True) if inputs.spec else None,
                naming_delimiter=inputs.delimiter,
            )
        )
        tree = Tree(version, inputs, graph)
        self._tree = tree
        return tree

    async def configure(
        self,
        connection: AsyncConnection,
        spec: HierarchySpec | None,
        delimiter: str | None,
        source: str | None = None,
    ) -> Tree:
        """Put a hierarchy file and naming rule in force (at start-up, on reload).

        A cycle with the other sources raises CycleError and changes nothing: the previous
        tree stays in force.
        """
        before = await self.tree(connection, lock="update")
        inputs = replace(before.inputs, spec=spec, delimiter=delimiter or None)
        if inputs == before.inputs:
            return before
        tree = await self.change_structure(connection, before, inputs)
        await connection.execute(
            update(HIERARCHY_STATE).where(HIERARCHY_STATE.c.id == 1).values(spec_source=source)
        )
        return tree

    # -- effective memberships ---------------------------------------------------------

    async def members_changed(
        self,
        connection: AsyncConnection,
        tree: Tree,
        group_id: str,
        added: Iterable[str] = (),
        removed: Iterable[str] = (),
    ) -> None:
        """Direct user members of ``group_id`` were added or removed."""
        added, removed = sorted(set(added)), sorted(set(removed))
        if not added and not removed:
            return
        receivers = sorted(tree.graph.receivers(group_id))
        await journal.record(connection, "group", receivers)
        rows = [{"group_id": g, "user_id": u, "sources": 1} for u in added for g in receivers]
        for start in range(0, len(rows), CHUNK):
            await self._upsert(connection, rows[start : start + CHUNK])
        # IN lists are chunked: a cascading group can have thousands of receivers.
        for user_start in range(0, len(removed), CHUNK):
            users = removed[user_start : user_start + CHUNK]
            for group_start in range(0, len(receivers), CHUNK):
                groups = receivers[group_start : group_start + CHUNK]
                condition = and_(EFFECTIVE.c.user_id.in_(users), EFFECTIVE.c.group_id.in_(groups))
                await connection.execute(
                    update(EFFECTIVE).where(condition).values(sources=EFFECTIVE.c.sources - 1)
                )
                await connection.execute(
                    delete(EFFECTIVE).where(condition, EFFECTIVE.c.sources <= 0)
                )

    async def user_deleted(self, connection: AsyncConnection, user_id: str) -> None:
        await connection.execute(delete(EFFECTIVE).where(EFFECTIVE.c.user_id == user_id))

    async def group_deleted(self, connection: AsyncConnection, group_id: str) -> None:
        await connection.execute(delete(EFFECTIVE).where(EFFECTIVE.c.group_id == group_id))

    def _insert(self) -> Any:
        dialect = sqlite if self.database.is_sqlite else postgresql
        return dialect.insert(EFFECTIVE)

    async def _upsert(self, connection: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        statement = self._insert().values(rows)
        await connection.execute(
            statement.on_conflict_do_update(
                index_elements=["group_id", "user_id"],
                set_={"sources": EFFECTIVE.c.sources + statement.excluded.sources},
            )
        )

    async def _apply_source_deltas(
        self, connection: AsyncConnection, deltas: list[tuple[str, str, int]]
    ) -> None:
        """For each (G, X, ±1): add or subtract the direct user members of X to/from G."""
        touched = {g for g, _, _ in deltas}
        await journal.record(connection, "group", touched)
        for start in range(0, len(deltas), CHUNK):
            chunk = deltas[start : start + CHUNK]
            pairs = union_all(
                *(
                    select(
                        cast(literal(g), String).label("group_id"),
                        cast(literal(x), String).label("source_id"),
                        cast(literal(sign), Integer).label("sign"),
                    )
                    for g, x, sign in chunk
                )
            ).subquery("pairs")
            gathered = (
                select(pairs.c.group_id, MEMBERS.c.member_id, func.sum(pairs.c.sign))
                .join_from(pairs, MEMBERS, MEMBERS.c.group_id == pairs.c.source_id)
                .where(MEMBERS.c.member_type == "User")
                .group_by(pairs.c.group_id, MEMBERS.c.member_id)
            )
            statement = self._insert().from_select(["group_id", "user_id", "sources"], gathered)
            await connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["group_id", "user_id"],
                    set_={"sources": EFFECTIVE.c.sources + statement.excluded.sources},
                )
            )
        for start in range(0, len(touched), CHUNK):
            groups = sorted(touched)[start : start + CHUNK]
            await connection.execute(
                delete(EFFECTIVE).where(EFFECTIVE.c.group_id.in_(groups), EFFECTIVE.c.sources <= 0)
            )

    async def recompute(self, connection: AsyncConnection) -> None:
        """Rebuild the whole table from the tree and the direct memberships (repair).

        The (group, source) pairs go into a temporary table, and one INSERT … SELECT joins
        them with the direct memberships: the database does the counting, in one pass.
        """
        tree = await self.tree(connection, lock="update")
        await connection.execute(delete(EFFECTIVE))
        pairs = [
            {"group_id": group, "source_id": source}
            for group in sorted(tree.inputs.groups)
            for source in sorted(tree.graph.sources(group))
        ]
        await connection.execute(
            text(
                "CREATE TEMPORARY TABLE recompute_pairs "
                "(group_id VARCHAR(36) NOT NULL, source_id VARCHAR(36) NOT NULL)"
            )
        )
        # No try/finally: on an error the transaction rolls back, and with it the table's
        # creation (DDL is transactional on SQLite and PostgreSQL).
        temporary = table(
            "recompute_pairs", column("group_id", String), column("source_id", String)
        )
        for start in range(0, len(pairs), 10_000):
            await connection.execute(insert(temporary), pairs[start : start + 10_000])
        counted = (
            select(temporary.c.group_id, MEMBERS.c.member_id, func.count())
            .join_from(temporary, MEMBERS, MEMBERS.c.group_id == temporary.c.source_id)
            .where(MEMBERS.c.member_type == "User")
            .group_by(temporary.c.group_id, MEMBERS.c.member_id)
        )
        await connection.execute(
            insert(EFFECTIVE).from_select(["group_id", "user_id", "sources"], counted)
        )
        await connection.execute(text("DROP TABLE recompute_pairs"))
        await journal.record(connection, "group", tree.inputs.groups)

    # -- reading -------------------------------------------------------------------------

    async def effective_member_ids(self, connection: AsyncConnection, group_id: str) -> set[str]:
        """Active users effectively in a group."""
        rows = await connection.execute(
            select(EFFECTIVE.c.user_id)
            .join(USERS, USERS.c.id == EFFECTIVE.c.user_id)
            .where(EFFECTIVE.c.group_id == group_id, USERS.c.active.is_(True))
        )
        return set(rows.scalars())

    async def snapshot(self, connection: AsyncConnection) -> dict[tuple[str, str], int]:
        """The whole table, for comparisons with a recomputation."""
        rows = await connection.execute(
            select(EFFECTIVE.c.group_id, EFFECTIVE.c.user_id, EFFECTIVE.c.sources)
        )
        return {(g, u): s for g, u, s in rows}


def _starting_at(cycle: list[str], focus: str | None) -> list[str]:
    """The cycle [a, b, c, a] rotated to start at ``focus`` (the group being written)."""
    ring = cycle[:-1]
    if focus not in ring:
        return cycle
    start = ring.index(focus)
    rotated = ring[start:] + ring[:start]
    return [*rotated, rotated[0]]


def _source_deltas(
    before: Tree, inputs: TreeInputs, graph: GroupGraph
) -> list[tuple[str, str, int]]:
    """(G, X, ±1) for every group G whose sources gained (+1) or lost (-1) group X."""
    old, new = before.graph, graph
    candidates: set[str] = set(before.inputs.groups.keys() ^ inputs.groups.keys())
    changed_edges = old.edges.keys() ^ new.edges.keys()
    for parent, child in changed_edges:
        above = {parent} | old.ancestors(parent) | new.ancestors(parent)
        candidates |= above
        if above & (old.cascading | new.cascading):
            candidates |= {child} | old.descendants(child) | new.descendants(child)
    for group in old.cascading ^ new.cascading:
        candidates |= {group} | old.descendants(group) | new.descendants(group)
    deltas: list[tuple[str, str, int]] = []
    for group in sorted(candidates):
        was = old.sources(group) if group in before.inputs.groups else set()
        now = new.sources(group) if group in inputs.groups else set()
        deltas += [(group, x, 1) for x in sorted(now - was)]
        deltas += [(group, x, -1) for x in sorted(was - now)]
    return deltas


__all__ = [
    "CycleError",
    "GroupInfo",
    "GroupRef",
    "Inheritance",
    "Tree",
    "TreeInputs",
    "parse_spec",
]
