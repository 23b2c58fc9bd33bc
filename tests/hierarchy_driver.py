"""Driving scim-bridge's storage and reading its group tree synchronously, in test terms.

:class:`Bridge` writes through :class:`SqlScimStorage` (the code path of every SCIM write)
and reads what a person would look at: a group's effective members, a user's ``groups``
attribute as SCIM returns it, and the reasons the hierarchy service gives. Everything is
named by displayName and userName, so that assertions read like the semantics they pin.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar, cast

import httpx
from scim2_models import EnterpriseUser, Group, GroupMember, Resource, User

from scim_bridge.config import HierarchySettings, Settings
from scim_bridge.hierarchy.engine import Tree
from scim_bridge.hierarchy.service import HierarchyService, ReloadOutcome
from scim_bridge.hierarchy.spec import parse_spec
from scim_bridge.scim.provider import build_provider
from scim_bridge.store.db import Database
from scim_bridge.store.scim_storage import SqlScimStorage

T = TypeVar("T")


class Bridge:
    """The storage and hierarchy service of one database, on one event loop."""

    def __init__(self, database_url: str, hierarchy: HierarchySettings | None = None):
        self.runner = asyncio.Runner()
        self.database = Database(database_url)
        provider = build_provider(Settings())
        self.storage = SqlScimStorage(self.database, provider)
        self.user_type, self.group_type = provider.resource_types
        self.service = HierarchyService(
            self.database, self.storage.inheritance, hierarchy or HierarchySettings()
        )

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(coroutine)

    def close(self) -> None:
        self.run(self.database.dispose())
        self.runner.close()

    # -- writing, as a SCIM client would ----------------------------------------------------

    def user(self, name: str) -> str:
        user = User[EnterpriseUser](user_name=name, active=True)
        created = self.run(self.storage.create(self.user_type, user))
        return str(created.id)

    def group(self, name: str, members: Iterable[str] = (), external_id: str | None = None) -> str:
        """Create a group; ``members`` are ids of users or groups."""
        group = Group(display_name=name, external_id=external_id)
        listed = [GroupMember(value=m) for m in members]
        if listed:
            group.members = listed
        return str(self.run(self.storage.create(self.group_type, group)).id)

    def _group(self, group_id: str) -> Group:
        return cast(Group, self.run(self.storage.get(self.group_type, group_id)))

    def _save(self, resource: Resource[Any]) -> None:
        resource_type = self.group_type if isinstance(resource, Group) else self.user_type
        self.run(self.storage.update(resource_type, resource))

    def set_members(self, group_id: str, members: Iterable[str]) -> None:
        group = self._group(group_id)
        listed = [GroupMember(value=m) for m in sorted(set(members))]
        group.members = listed or None
        self._save(group)

    def add(self, group_id: str, *member_ids: str) -> None:
        self.set_members(group_id, self.member_ids(group_id) | set(member_ids))

    def remove(self, group_id: str, *member_ids: str) -> None:
        self.set_members(group_id, self.member_ids(group_id) - set(member_ids))

    def rename(self, group_id: str, name: str, external_id: str | None = None) -> None:
        group = self._group(group_id)
        group.display_name = name
        if external_id is not None:
            group.external_id = external_id
        self._save(group)

    def set_active(self, user_id: str, active: bool) -> None:
        user = self.run(self.storage.get(self.user_type, user_id))
        user.active = active  # type: ignore[attr-defined]
        self._save(user)

    def delete_group(self, group_id: str) -> None:
        self.run(self.storage.delete(self.group_type, group_id))

    # -- the hierarchy file and the naming rule ----------------------------------------------

    def configure(self, hierarchy_file: str | None, delimiter: str | None = None) -> Tree:
        """Put a hierarchy file's text and a naming delimiter in force (as at start-up)."""
        spec = parse_spec(hierarchy_file) if hierarchy_file is not None else None

        async def apply() -> Tree:
            async with self.database.transaction(write=True) as connection:
                return await self.storage.inheritance.configure(connection, spec, delimiter)

        return self.run(apply())

    def start(self) -> None:
        self.run(self.service.start())

    def reload(self) -> ReloadOutcome:
        return self.run(self.service.reload())

    # -- reading what a person would see ----------------------------------------------------

    def group_id(self, group: str) -> str:
        """The id of a group named by displayName (or externalId)."""
        return str(self.run(self.service.group_view(group, limit=0))["id"])

    def member_ids(self, group_id: str) -> set[str]:
        """The group's stored (direct) members, as SCIM returns them."""
        return {m.value for m in self._group(group_id).members or [] if m.value}

    def effective(self, group: str) -> set[str]:
        """userNames of the active users effectively in a group (by id or displayName)."""
        view = self.run(self.service.group_view(group, limit=10_000))
        return {m["userName"] for m in view["effectiveMembers"]["Resources"]}

    def groups(self, user_id: str) -> dict[str, str]:
        """The user's SCIM ``groups``: displayName → "direct" or "indirect"."""
        user = self.run(self.storage.get(self.user_type, user_id))
        listed = user.groups or []  # type: ignore[attr-defined]
        names = [g.display for g in listed]
        assert len(names) == len(set(names)), f"a group is listed twice: {names}"
        return {g.display: g.type for g in listed}

    def why(self, user: str) -> dict[str, list[str]]:
        """Every group the user is effectively in → the reasons, as the bridge spells them."""
        view = self.run(self.service.user_view(user))
        return {g["displayName"]: [r["text"] for r in g["reasons"]] for g in view["groups"]}

    def edges(self) -> dict[tuple[str, str], list[str]]:
        """(parent, child) displayNames → the sources that declare the edge."""
        view = self.run(self.service.tree_view())
        names = {g["id"]: g["displayName"] for g in view["groups"]}
        return {
            (g["displayName"], names[child["id"]]): child["sources"]
            for g in view["groups"]
            for child in g["children"]
        }

    def group_names(self) -> set[str]:
        view = self.run(self.service.tree_view())
        return {g["displayName"] for g in view["groups"]}

    def effective_total(self, group: str) -> int:
        """How many effective memberships the group has (a user counted once per group)."""
        view = self.run(self.service.group_view(group, limit=10_000))
        return int(view["effectiveMembers"]["totalResults"])


# -- the same over HTTP ------------------------------------------------------------------------

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def post_user(scim: httpx.Client, name: str, **attributes: Any) -> str:
    body = {"schemas": [USER_SCHEMA], "userName": name, **attributes}
    response = scim.post("/Users", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def post_group(
    scim: httpx.Client, name: str, members: Iterable[str] = (), **attributes: Any
) -> str:
    body: dict[str, Any] = {"schemas": [GROUP_SCHEMA], "displayName": name, **attributes}
    listed = [{"value": m} for m in members]
    if listed:
        body["members"] = listed
    response = scim.post("/Groups", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def patch_group(scim: httpx.Client, group_id: str, *operations: dict[str, Any]) -> httpx.Response:
    return scim.patch(
        f"/Groups/{group_id}", json={"schemas": [PATCH_OP], "Operations": list(operations)}
    )


def add_members(scim: httpx.Client, group_id: str, *member_ids: str) -> httpx.Response:
    value = [{"value": m} for m in member_ids]
    return patch_group(scim, group_id, {"op": "add", "path": "members", "value": value})


def user_groups(scim: httpx.Client, user_id: str) -> dict[str, str]:
    """The user's ``groups`` as SCIM returns them: displayName → "direct" or "indirect"."""
    response = scim.get(f"/Users/{user_id}")
    assert response.status_code == 200, response.text
    listed = response.json().get("groups", [])
    names = [g["display"] for g in listed]
    assert len(names) == len(set(names)), f"a group is listed twice: {names}"
    return {g["display"]: g["type"] for g in listed}


def member_ids(scim: httpx.Client, group_id: str) -> set[str]:
    response = scim.get(f"/Groups/{group_id}")
    assert response.status_code == 200, response.text
    return {m["value"] for m in response.json().get("members", [])}
