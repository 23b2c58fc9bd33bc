"""What a sync would change in Coder (API mode): desired state against Coder's state.

Pure: it reads snapshots and returns a :class:`Plan`; ``coder/apply.py`` carries it out and
``scim-bridge plan`` prints it. Each managed group's Coder members become exactly its
effective members (the minimal ``add_users``/``remove_users`` diff, contract §3.2); groups
the bridge does not own or adopt are never touched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .client import CoderGroup, CoderUser
from .naming import display_name, slug, with_suffix


@dataclass(frozen=True)
class DesiredGroup:
    scim_id: str
    display_name: str
    members: frozenset[str]  # SCIM ids of its effective, active members


@dataclass(frozen=True)
class ScimUserInfo:
    id: str
    user_name: str
    email: str | None
    display_name: str | None
    active: bool


@dataclass(frozen=True)
class Link:
    scim_group_id: str
    coder_group_id: str | None
    coder_name: str
    owned: bool = True


class UserIndex:
    """Coder users by lower-cased email and username (contract §4: both unique)."""

    def __init__(self, users: Iterable[CoderUser] = ()):
        self.by_email: dict[str, CoderUser] = {}
        self.by_username: dict[str, CoderUser] = {}
        for user in users:
            self.add(user)

    def add(self, user: CoderUser) -> None:
        if user.email:
            self.by_email[user.email.lower()] = user
        self.by_username[user.username.lower()] = user

    def match(self, user: ScimUserInfo, match_by: str) -> CoderUser | None:
        if match_by == "username":
            return self.by_username.get(user.user_name.lower())
        return self.by_email.get(user.email.lower()) if user.email else None


@dataclass
class GroupChange:
    scim_id: str | None
    coder_id: str | None  # None: the group is created first
    name: str
    display_name: str
    create: bool = False
    rename: bool = False
    delete: bool = False
    add: list[str] = field(default_factory=list)  # SCIM user ids (see Plan.coder_ids)
    remove: list[str] = field(default_factory=list)  # Coder user ids
    remove_names: list[str] = field(default_factory=list)
    current_size: int = 0  # members in Coder now (for the failsafe)

    @property
    def changes(self) -> bool:
        return self.create or self.rename or self.delete or bool(self.add or self.remove)


@dataclass
class Plan:
    groups: list[GroupChange] = field(default_factory=list)
    user_creates: list[ScimUserInfo] = field(default_factory=list)
    org_joins: list[str] = field(default_factory=list)  # Coder user ids
    suspends: list[str] = field(default_factory=list)  # Coder user ids
    pending: dict[str, str] = field(default_factory=dict)  # SCIM user id -> why
    adopted: list[Link] = field(default_factory=list)
    coder_ids: dict[str, str] = field(default_factory=dict)  # SCIM user id -> Coder user id

    @property
    def changes(self) -> list[GroupChange]:
        return [g for g in self.groups if g.changes]

    @property
    def empty(self) -> bool:
        return not (self.changes or self.user_creates or self.org_joins or self.suspends)

    @property
    def removals(self) -> int:
        return sum(len(g.remove) for g in self.groups)

    def as_json(self) -> dict[str, Any]:
        return {
            "groups": [
                {
                    "scim_id": g.scim_id,
                    "coder_id": g.coder_id,
                    "name": g.name,
                    "display_name": g.display_name,
                    "create": g.create,
                    "rename": g.rename,
                    "delete": g.delete,
                    "add": sorted(g.add),
                    "remove": sorted(g.remove),
                }
                for g in self.changes
            ],
            "create_users": [u.user_name for u in self.user_creates],
            "join_organization": sorted(self.org_joins),
            "suspend": sorted(self.suspends),
            "pending_users": self.pending,
        }

    def describe(self, user_names: dict[str, str]) -> list[str]:
        """Human-readable lines, one per change."""
        lines = []
        for user in self.user_creates:
            lines.append(f"+ create Coder user {user.user_name} ({user.email})")
        for group in self.changes:
            label = f"{group.name} ({group.display_name})"
            if group.create:
                lines.append(f"+ create group {label}")
            if group.rename:
                lines.append(f"~ rename group to {label}")
            if group.delete:
                lines.append(f"- delete group {label}")
            for scim_id in sorted(group.add, key=lambda u: user_names.get(u, u)):
                lines.append(f"  + {group.name}: add {user_names.get(scim_id, scim_id)}")
            for name in sorted(group.remove_names):
                lines.append(f"  - {group.name}: remove {name}")
        lines += [f"~ suspend Coder user {user_id}" for user_id in sorted(self.suspends)]
        lines += [f"? pending {user_names.get(u, u)}: {why}" for u, why in self.pending.items()]
        return lines


@dataclass(frozen=True)
class PlanSettings:
    group_prefix: str = ""
    match_users_by: str = "email"
    create_missing_users: bool = False
    suspend_deactivated_users: bool = False
    adopt_groups: frozenset[str] = frozenset()
    # False in mapping mode: groups are created, renamed and deleted, but their members (and
    # the users) are left to Coder's login-time group sync.
    manage_members: bool = True


def compute_plan(
    *,
    desired: dict[str, DesiredGroup],
    gone: Iterable[str],
    links: dict[str, Link],
    coder_groups: list[CoderGroup],
    users: dict[str, ScimUserInfo],
    index: UserIndex,
    organization_id: str,
    settings: PlanSettings,
) -> Plan:
    """The changes that make Coder's managed groups equal ``desired``.

    ``desired`` holds the SCIM groups in scope, ``gone`` the SCIM groups in scope that no
    longer exist, ``users`` every SCIM user that appears in them (and, for suspensions, the
    deactivated users in scope).
    """
    plan = Plan()
    by_id = {g.id: g for g in coder_groups}
    by_name = {g.name: g for g in coder_groups}
    taken = set(by_name)
    if settings.manage_members:
        resolved = _resolve_users(plan, users, index, organization_id, settings)
    else:
        resolved = {}
    created = {user.id for user in plan.user_creates}  # once: looked up for every member

    for scim_id in sorted(desired, key=lambda s: (desired[s].display_name.lower(), s)):
        group = desired[scim_id]
        link = links.get(scim_id)
        target = _linked_group(link, by_id, by_name)
        wanted_display = display_name(group.display_name)
        if target is None and link is None and _adoptable(group, settings):
            target = by_name.get(slug(group.display_name, settings.group_prefix))
            if target is not None and not target.is_everyone:
                plan.adopted.append(Link(scim_id, target.id, target.name, owned=False))
            else:
                target = None
        if target is None:
            name = _free_name(slug(group.display_name, settings.group_prefix), taken)
            taken.add(name)
            change = GroupChange(scim_id, None, name, wanted_display, create=True)
            if settings.manage_members:
                change.add = sorted(u for u in group.members if u in resolved or u in created)
            plan.groups.append(change)
            continue
        change = GroupChange(scim_id, target.id, target.name, wanted_display)
        change.current_size = len(target.members)
        owned = link.owned if link is not None else False
        wanted_name = slug(group.display_name, settings.group_prefix)
        if owned and target.name != wanted_name and not _same_base(target.name, wanted_name):
            change.name = _free_name(wanted_name, taken - {target.name})
            taken.add(change.name)
            change.rename = True
        if target.display_name != wanted_display:
            change.rename = True
        if not settings.manage_members:
            plan.groups.append(change)
            continue
        desired_coder = {resolved[u].id: u for u in group.members if u in resolved}
        actual = target.member_ids
        change.add = sorted(desired_coder[c] for c in desired_coder.keys() - actual)
        change.add += sorted(u for u in group.members if u in created)
        removed = actual - desired_coder.keys()
        change.remove = sorted(removed)
        names = {m.id: m.username for m in target.members}
        change.remove_names = sorted(names.get(r, r) for r in removed)
        plan.groups.append(change)

    for scim_id in sorted(set(gone)):
        link = links.get(scim_id)
        target = _linked_group(link, by_id, by_name)
        if link is None or target is None or not link.owned:
            continue
        plan.groups.append(
            GroupChange(scim_id, target.id, target.name, target.display_name, delete=True)
        )
    return plan


def linked_ids(
    desired: dict[str, DesiredGroup], gone: Iterable[str], links: dict[str, Link]
) -> list[str] | None:
    """The Coder groups a plan of these SCIM groups reads, or None when one of them has no
    Coder group yet: creating (or adopting) it needs every name taken in the organization."""
    ids: set[str] = set()
    for scim_id in desired:
        link = links.get(scim_id)
        if link is None or link.coder_group_id is None:
            return None
        ids.add(link.coder_group_id)
    for scim_id in gone:
        link = links.get(scim_id)
        if link is not None and link.coder_group_id is not None:
            ids.add(link.coder_group_id)
    return sorted(ids)


def needs_every_name(
    desired: dict[str, DesiredGroup],
    links: dict[str, Link],
    found: list[CoderGroup],
    settings: PlanSettings,
) -> bool:
    """Whether the groups read by id are too few to plan with: one was deleted in Coder (it is
    created again) or is renamed; both pick a free name among every group of the organization."""
    by_id = {group.id: group for group in found}
    for scim_id, group in desired.items():
        link = links[scim_id]
        target = by_id.get(str(link.coder_group_id))
        if target is None:
            return True
        wanted = slug(group.display_name, settings.group_prefix)
        if link.owned and target.name != wanted and not _same_base(target.name, wanted):
            return True
    return False


def _resolve_users(
    plan: Plan,
    users: dict[str, ScimUserInfo],
    index: UserIndex,
    organization_id: str,
    settings: PlanSettings,
) -> dict[str, CoderUser]:
    resolved: dict[str, CoderUser] = {}
    for user in sorted(users.values(), key=lambda u: u.user_name.lower()):
        coder_user = index.match(user, settings.match_users_by)
        if not user.active:
            suspend = coder_user is not None and settings.suspend_deactivated_users
            if suspend and coder_user is not None and coder_user.status != "suspended":
                plan.suspends.append(coder_user.id)
            continue
        if coder_user is None:
            if settings.create_missing_users and user.email:
                plan.user_creates.append(user)
            else:
                key = "email" if settings.match_users_by == "email" else "username"
                value = user.email if key == "email" else user.user_name
                plan.pending[user.id] = f"no Coder user with {key} {value!r}" + (
                    "" if value else f" (the SCIM user has no {key})"
                )
            continue
        if organization_id not in coder_user.organization_ids:
            plan.org_joins.append(coder_user.id)
        resolved[user.id] = coder_user
        plan.coder_ids[user.id] = coder_user.id
    return resolved


def _linked_group(
    link: Link | None, by_id: dict[str, CoderGroup], by_name: dict[str, CoderGroup]
) -> CoderGroup | None:
    if link is None:
        return None
    if link.coder_group_id is not None:
        return by_id.get(link.coder_group_id)
    # A creation recorded but not confirmed (crash): the group of that name is ours.
    return by_name.get(link.coder_name)


def _adoptable(group: DesiredGroup, settings: PlanSettings) -> bool:
    wanted = {name.lower() for name in settings.adopt_groups}
    return group.display_name.lower() in wanted or slug(group.display_name).lower() in wanted


def _free_name(name: str, taken: set[str]) -> str:
    if name not in taken:
        return name
    number = 2
    while with_suffix(name, number) in taken:
        number += 1
    return with_suffix(name, number)


def _same_base(current: str, wanted: str) -> bool:
    """``java-2`` is how ``java`` was made unique: not a rename."""
    head, _, tail = current.rpartition("-")
    return head == wanted and tail.isdigit()
