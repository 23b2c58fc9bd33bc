"""A small model of Coder's RBAC (contract §1.2): enough to tell an owner, a `user-admin`,
a `template-admin`, organization admins and plain members apart.

- site `owner`: everything;
- site `user-admin`: users, organization members, groups, IdP sync settings (no templates);
- site `template-admin`: templates and their ACLs; reads users and groups;
- site `auditor`: reads;
- organization roles do the same within one organization;
- a plain member reads itself, its organizations, the groups it is in, and templates its
  ACL grants reach (directly, through a group, or through Everyone).
Unreadable resources answer 404 (`Is404Error`), readable but unwritable ones 403.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from .models import Group, Organization, Template, User

if TYPE_CHECKING:
    from .state import CoderState

_SITE_READERS = {"owner", "user-admin", "template-admin", "auditor"}


def site_roles(user: User) -> set[str]:
    return set(user.roles)


def org_roles(state: CoderState, user: User, org_id: uuid.UUID) -> set[str]:
    member = state.member(org_id, user.id)
    return set() if member is None else set(member.roles)


def is_owner(user: User) -> bool:
    return "owner" in user.roles


def _site_or_org(
    state: CoderState, user: User, org_id: uuid.UUID, site: set[str], org: set[str]
) -> bool:
    return bool(site_roles(user) & site) or bool(org_roles(state, user, org_id) & org)


def can_read_org(state: CoderState, user: User, org: Organization) -> bool:
    return bool(site_roles(user) & _SITE_READERS) or state.is_member(org.id, user.id)


def can_manage_members(state: CoderState, user: User, org_id: uuid.UUID) -> bool:
    return _site_or_org(
        state,
        user,
        org_id,
        {"owner", "user-admin"},
        {"organization-admin", "organization-user-admin"},
    )


def can_read_user(state: CoderState, actor: User, target: User) -> bool:
    if actor.id == target.id or site_roles(actor) & _SITE_READERS:
        return True
    admin_roles = {
        "organization-admin",
        "organization-user-admin",
        "organization-template-admin",
        "organization-auditor",
    }
    return any(
        org_roles(state, actor, org_id) & admin_roles for org_id in state.user_org_ids(target.id)
    )


def can_manage_users(user: User) -> bool:
    return bool(site_roles(user) & {"owner", "user-admin"})


def can_read_group(state: CoderState, user: User, group: Group) -> bool:
    if _site_or_org(
        state,
        user,
        group.organization_id,
        _SITE_READERS,
        {
            "organization-admin",
            "organization-user-admin",
            "organization-template-admin",
            "organization-auditor",
        },
    ):
        return True
    return state.user_in_group(group, user.id)


def can_manage_groups(state: CoderState, user: User, org_id: uuid.UUID) -> bool:
    return can_manage_members(state, user, org_id)


def can_idpsync(state: CoderState, user: User, org_id: uuid.UUID, *, write: bool) -> bool:
    if can_manage_members(state, user, org_id):
        return True
    return not write and _site_or_org(state, user, org_id, {"auditor"}, {"organization-auditor"})


def template_acl_role(state: CoderState, user: User, template: Template) -> str:
    """The strongest ACL role the user holds on the template: "admin", "use" or ""."""
    roles = {template.user_acl.get(str(user.id), "")}
    for group_id, role in template.group_acl.items():
        try:
            group = state.groups.get(uuid.UUID(group_id))
        except ValueError:
            continue
        if group is not None and state.user_in_group(group, user.id):
            roles.add(role)
    if "admin" in roles:
        return "admin"
    return "use" if "use" in roles else ""


def can_read_template(state: CoderState, user: User, template: Template) -> bool:
    if _site_or_org(
        state,
        user,
        template.organization_id,
        {"owner", "template-admin", "auditor"},
        {"organization-admin", "organization-template-admin", "organization-auditor"},
    ):
        return True
    return template_acl_role(state, user, template) != ""


def can_admin_template(state: CoderState, user: User, template: Template) -> bool:
    """`create`/`update` on the template: template admins, or the ACL `admin` role."""
    if _site_or_org(
        state,
        user,
        template.organization_id,
        {"owner", "template-admin"},
        {"organization-admin", "organization-template-admin"},
    ):
        return True
    return template_acl_role(state, user, template) == "admin"
