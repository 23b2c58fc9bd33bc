"""Property: incremental effective memberships equal a naive recomputation from scratch.

Hypothesis drives random sequences of member adds and removes, nesting changes from all three
sources (SCIM group members, the hierarchy file, the naming rule), renames that move a group,
deactivations, group deletions and cascade flags, on SQLite and PostgreSQL. After every step
the table must equal what the definitions in docs/inheritance.md give, computed here by a
deliberately naive model, and a full recompute must give the same table.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from scim2_models import EnterpriseUser, Group, InvalidValueException, User
from sqlalchemy import delete, select, update

from scim_bridge.config import Settings
from scim_bridge.hierarchy.engine import CycleError
from scim_bridge.hierarchy.spec import GroupEntry, GroupRef, HierarchySpec
from scim_bridge.scim.provider import build_provider
from scim_bridge.store.db import Database
from scim_bridge.store.scim_storage import SqlScimStorage
from scim_bridge.store.tables import (
    EFFECTIVE,
    GROUPS,
    HIERARCHY_STATE,
    INDEX,
    MEMBERS,
    USERS,
)

DELIMITER = "/"


class NaiveModel:
    """The semantics, computed the slow and obvious way."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}  # group id -> displayName
        self.direct: dict[str, set[str]] = {}  # group id -> direct member ids (users and groups)
        self.active: dict[str, bool] = {}  # user id -> active
        self.file_edges: set[tuple[str, str]] = set()  # by displayName
        self.cascade: set[str] = set()  # displayNames

    def edges(self) -> set[tuple[str, str]]:
        by_name = {name.lower(): gid for gid, name in self.names.items()}
        edges = {(g, m) for g, ms in self.direct.items() for m in ms if m in self.names}
        for parent, child in self.file_edges:
            if parent.lower() in by_name and child.lower() in by_name:
                edges.add((by_name[parent.lower()], by_name[child.lower()]))
        for gid, name in self.names.items():
            head, sep, _ = name.rpartition(DELIMITER)
            if sep and head.lower() in by_name:
                edges.add((by_name[head.lower()], gid))
        return edges

    def has_cycle(self) -> bool:
        edges = self.edges()
        return any(a in self.below(a, edges) for a in self.names)

    @staticmethod
    def below(group: str, edges: set[tuple[str, str]]) -> set[str]:
        found: set[str] = set()
        stack = [c for p, c in edges if p == group]
        while stack:
            node = stack.pop()
            if node not in found:
                found.add(node)
                stack += [c for p, c in edges if p == node]
        return found

    def effective(self) -> set[tuple[str, str]]:
        edges = self.edges()
        cascading = {gid for gid, name in self.names.items() if name.lower() in self.cascade}
        result = set()
        for group in self.names:
            sources = {group} | self.below(group, edges)
            sources |= {a for a in cascading if group in self.below(a, edges)}
            for source in sources:
                for member in self.direct.get(source, ()):
                    if self.active.get(member):
                        result.add((group, member))
        return result


class Tenant:
    """The storage under test, driven synchronously."""

    def __init__(self, database_url: str):
        self.runner = asyncio.Runner()
        self.database = Database(database_url)
        provider = build_provider(Settings())
        self.storage = SqlScimStorage(self.database, provider)
        self.user_type, self.group_type = provider.resource_types
        self.run(self._reset())

    def run(self, coroutine: Any) -> Any:
        return self.runner.run(coroutine)

    async def _reset(self) -> None:
        async with self.database.transaction(write=True) as connection:
            for table in (EFFECTIVE, INDEX, MEMBERS, GROUPS, USERS):
                await connection.execute(delete(table))
            await connection.execute(
                update(HIERARCHY_STATE).values(version="reset", spec=None, naming_delimiter=None)
            )
        async with self.database.transaction(write=True) as connection:
            await self.storage.inheritance.configure(connection, None, DELIMITER)

    def close(self) -> None:
        self.run(self.database.dispose())
        self.runner.close()

    def create_user(self, name: str) -> str:
        user = User[EnterpriseUser](user_name=name, active=True)
        return str(self.run(self.storage.create(self.user_type, user)).id)

    def set_active(self, user_id: str, active: bool) -> None:
        user = self.run(self.storage.get(self.user_type, user_id))
        user.active = active
        self.run(self.storage.update(self.user_type, user))

    def create_group(self, name: str) -> str:
        return str(self.run(self.storage.create(self.group_type, Group(display_name=name))).id)

    def set_group(self, group_id: str, name: str, members: set[str]) -> None:
        group = self.run(self.storage.get(self.group_type, group_id))
        group.display_name = name
        group.members = [{"value": m} for m in sorted(members)] or None
        self.run(self.storage.update(self.group_type, group))

    def delete_group(self, group_id: str) -> None:
        self.run(self.storage.delete(self.group_type, group_id))

    def configure(self, model: NaiveModel) -> None:
        entries: dict[str, GroupEntry] = {}
        for parent, child in sorted(model.file_edges):
            entry = entries.setdefault(parent, GroupEntry(group=GroupRef(displayName=parent)))
            entry.children.append(GroupRef(displayName=child))
        for name in sorted(model.cascade):
            entries.setdefault(name, GroupEntry(group=GroupRef(displayName=name))).cascade = True
        spec = HierarchySpec(groups=list(entries.values()))

        async def apply() -> None:
            async with self.database.transaction(write=True) as connection:
                await self.storage.inheritance.configure(connection, spec, DELIMITER)

        self.run(apply())

    def effective(self) -> set[tuple[str, str]]:
        async def read() -> set[tuple[str, str]]:
            async with self.database.transaction(write=False) as connection:
                rows = await connection.execute(
                    select(EFFECTIVE.c.group_id, EFFECTIVE.c.user_id)
                    .join(USERS, USERS.c.id == EFFECTIVE.c.user_id)
                    .where(USERS.c.active.is_(True))
                )
                return {(g, u) for g, u in rows}

        return set(self.run(read()))

    def counts_and_recomputed(self) -> tuple[dict[Any, int], dict[Any, int]]:
        async def both() -> tuple[dict[Any, int], dict[Any, int]]:
            inheritance = self.storage.inheritance
            async with self.database.transaction(write=True) as connection:
                incremental = await inheritance.snapshot(connection)
                await inheritance.recompute(connection)
                recomputed = await inheritance.snapshot(connection)
            return incremental, recomputed

        return self.run(both())  # type: ignore[no-any-return]


class InheritanceMachine(RuleBasedStateMachine):
    database_url = ""

    def __init__(self) -> None:
        super().__init__()
        self.tenant = Tenant(self.database_url)
        self.model = NaiveModel()
        self.users: list[str] = []
        self.groups: list[str] = []
        self.counter = 0

    def teardown(self) -> None:
        self.tenant.close()

    def _name(self) -> str:
        self.counter += 1
        return f"g{self.counter}"

    @initialize(data=st.data())
    def start_with_a_small_tree(self, data: st.DataObject) -> None:
        """Three users and a chain g1 → g1/g2 → g1/g2/g3 beside g4, one group cascading, so
        that short runs already reach deep and cascading states."""
        for _ in range(3):
            self.add_user()
        for name in ("g1", "g1/g2", "g1/g2/g3", "g4"):
            group = self.tenant.create_group(name)
            self.groups.append(group)
            self.model.names[group] = name
            self.model.direct[group] = set()
        self.counter = 4
        cascading = data.draw(st.sampled_from(["g1", "g1/g2", "g4"]), label="cascading group")
        self._configure(cascade={cascading})

    @rule()
    def add_user(self) -> None:
        user = self.tenant.create_user(f"u{len(self.users)}")
        self.users.append(user)
        self.model.active[user] = True

    @rule(data=st.data())
    def add_group(self, data: st.DataObject) -> None:
        name = self._name()
        if self.groups and data.draw(st.booleans(), label="named under a parent"):
            parent = data.draw(st.sampled_from(self.groups), label="name parent")
            name = f"{self.model.names[parent]}{DELIMITER}{name}"
        group = self.tenant.create_group(name)
        self.groups.append(group)
        self.model.names[group] = name
        self.model.direct[group] = set()

    def _write_group(self, group: str, name: str, members: set[str]) -> None:
        before = (self.model.names[group], set(self.model.direct[group]))
        self.model.names[group], self.model.direct[group] = name, members
        if self.model.has_cycle():
            self.model.names[group], self.model.direct[group] = before
            with pytest.raises(InvalidValueException, match="cycle"):
                self.tenant.set_group(group, name, members)
            return
        self.tenant.set_group(group, name, members)

    @precondition(lambda self: self.groups and self.users)
    @rule(data=st.data())
    def toggle_user_member(self, data: st.DataObject) -> None:
        group = data.draw(st.sampled_from(self.groups), label="group")
        user = data.draw(st.sampled_from(self.users), label="user")
        members = set(self.model.direct[group]) ^ {user}
        self._write_group(group, self.model.names[group], members)

    @precondition(lambda self: len(self.groups) >= 2)
    @rule(data=st.data())
    def toggle_group_member(self, data: st.DataObject) -> None:
        parent = data.draw(st.sampled_from(self.groups), label="parent")
        child = data.draw(st.sampled_from(self.groups), label="child")
        if parent == child:
            return
        members = set(self.model.direct[parent]) ^ {child}
        self._write_group(parent, self.model.names[parent], members)

    @precondition(lambda self: len(self.groups) >= 2)
    @rule(data=st.data())
    def move_by_renaming(self, data: st.DataObject) -> None:
        group = data.draw(st.sampled_from(self.groups), label="group")
        parent = data.draw(st.sampled_from(self.groups), label="new name parent")
        leaf = self.model.names[group].rpartition(DELIMITER)[2]
        name = leaf if parent == group else f"{self.model.names[parent]}{DELIMITER}{leaf}"
        if any(n.lower() == name.lower() for g, n in self.model.names.items() if g != group):
            return
        self._write_group(group, name, set(self.model.direct[group]))

    @precondition(lambda self: len(self.groups) >= 2)
    @rule(data=st.data())
    def toggle_file_edge(self, data: st.DataObject) -> None:
        parent = self.model.names[data.draw(st.sampled_from(self.groups), label="parent")]
        child = self.model.names[data.draw(st.sampled_from(self.groups), label="child")]
        if parent == child:
            return
        self._configure(edges=self.model.file_edges ^ {(parent, child)})

    @precondition(lambda self: self.groups)
    @rule(data=st.data())
    def toggle_cascade(self, data: st.DataObject) -> None:
        name = self.model.names[data.draw(st.sampled_from(self.groups), label="group")]
        self._configure(cascade=self.model.cascade ^ {name.lower()})

    def _configure(
        self, edges: set[tuple[str, str]] | None = None, cascade: set[str] | None = None
    ) -> None:
        before = (self.model.file_edges, self.model.cascade)
        self.model.file_edges = edges if edges is not None else self.model.file_edges
        self.model.cascade = cascade if cascade is not None else self.model.cascade
        if self.model.has_cycle():
            refused = self.model.file_edges, self.model.cascade
            self.model.file_edges, self.model.cascade = before
            probe = NaiveModel()
            probe.file_edges, probe.cascade = refused
            with pytest.raises(CycleError):
                self.tenant.configure(probe)
            return
        self.tenant.configure(self.model)

    @precondition(lambda self: self.users)
    @rule(data=st.data())
    def toggle_active(self, data: st.DataObject) -> None:
        user = data.draw(st.sampled_from(self.users), label="user")
        self.model.active[user] = not self.model.active[user]
        self.tenant.set_active(user, self.model.active[user])

    @precondition(lambda self: self.groups)
    @rule(data=st.data())
    def delete_group(self, data: st.DataObject) -> None:
        group = data.draw(st.sampled_from(self.groups), label="group")
        self.groups.remove(group)
        del self.model.names[group]
        del self.model.direct[group]
        for members in self.model.direct.values():
            members.discard(group)
        self.tenant.delete_group(group)

    @invariant()
    def effective_memberships_match_the_definition(self) -> None:
        assert self.tenant.effective() == self.model.effective()

    @invariant()
    def full_recompute_gives_the_same_table(self) -> None:
        incremental, recomputed = self.tenant.counts_and_recomputed()
        assert incremental == recomputed


def test_incremental_effective_memberships_equal_naive_recomputation(database_url: str) -> None:
    InheritanceMachine.database_url = database_url
    run_state_machine_as_test(
        InheritanceMachine,
        settings=settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
