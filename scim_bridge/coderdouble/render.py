"""The JSON shapes of `codersdk` (contract §2, §3.2, §4.3, §5.1, §7), with Go's `omitempty`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .models import (
    ORG_ROLES,
    SITE_ROLES,
    Group,
    GroupSyncSettings,
    Organization,
    OrganizationMember,
    Template,
    User,
)

if TYPE_CHECKING:
    from .state import CoderState


def ts(moment: datetime | None) -> str:
    """Go's `time.Time` JSON (RFC 3339 with trimmed nanoseconds); None = the zero time."""
    if moment is None:
        return "0001-01-01T00:00:00Z"
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += ("." + f"{moment.microsecond:06d}").rstrip("0")
    return text + "Z"


def organization(org: Organization) -> dict[str, Any]:
    return {
        "id": str(org.id),
        "name": org.name,
        "display_name": org.display_name,
        "description": org.description,
        "icon": org.icon,
        "created_at": ts(org.created_at),
        "updated_at": ts(org.updated_at),
        "is_default": org.is_default,
        "default_org_member_roles": list(org.default_org_member_roles),
    }


def slim_role(name: str, organization_id: str = "") -> dict[str, str]:
    display = SITE_ROLES.get(name) or ORG_ROLES.get(name) or name
    role = {"name": name, "display_name": display}
    if organization_id:
        role["organization_id"] = organization_id
    return role


def reduced_user(user: User) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": str(user.id),
        "username": user.username,
        "email": user.email,
        "created_at": ts(user.created_at),
        "updated_at": ts(user.updated_at),
        "last_seen_at": ts(user.last_seen_at),
        "status": user.status,
        "login_type": user.login_type,
    }
    if user.name:
        body["name"] = user.name
    if user.avatar_url:
        body["avatar_url"] = user.avatar_url
    if user.is_service_account:
        body["is_service_account"] = True
    if user.theme_preference:
        body["theme_preference"] = user.theme_preference
    return body


def user(state: CoderState, target: User) -> dict[str, Any]:
    body = reduced_user(target)
    body["organization_ids"] = [str(i) for i in state.user_org_ids(target.id)]
    body["roles"] = [slim_role(name) for name in target.roles]
    body["has_ai_seat"] = False
    return body


def group(state: CoderState, target: Group, *, exclude_members: bool = False) -> dict[str, Any]:
    org = state.organizations[target.organization_id]
    members = state.group_members(target)
    return {
        "id": str(target.id),
        "name": target.name,
        "display_name": target.display_name,
        "organization_id": str(target.organization_id),
        "members": [] if exclude_members else [reduced_user(u) for u in members],
        "total_member_count": len(members),
        "avatar_url": target.avatar_url,
        "quota_allowance": target.quota_allowance,
        "source": target.source,
        "organization_name": org.name,
        "organization_display_name": org.display_name,
    }


def organization_member(member: OrganizationMember) -> dict[str, Any]:
    org_id = str(member.organization_id)
    return {
        "user_id": str(member.user_id),
        "organization_id": org_id,
        "created_at": ts(member.created_at),
        "updated_at": ts(member.updated_at),
        "roles": [slim_role(name, org_id) for name in member.roles],
    }


def organization_member_with_user(member: OrganizationMember, target: User) -> dict[str, Any]:
    body = organization_member(member)
    body.update(
        {
            "username": target.username,
            "email": target.email,
            "status": target.status,
            "login_type": target.login_type,
            "last_seen_at": ts(target.last_seen_at),
            "user_created_at": ts(target.created_at),
            "user_updated_at": ts(target.updated_at),
            "global_roles": [slim_role(name) for name in target.roles],
            "has_ai_seat": False,
        }
    )
    if target.name:
        body["name"] = target.name
    if target.avatar_url:
        body["avatar_url"] = target.avatar_url
    if target.is_service_account:
        body["is_service_account"] = True
    return body


def template(state: CoderState, target: Template) -> dict[str, Any]:
    org = state.organizations[target.organization_id]
    creator = state.users.get(target.created_by_id)
    return {
        "id": str(target.id),
        "created_at": ts(target.created_at),
        "updated_at": ts(target.updated_at),
        "organization_id": str(org.id),
        "organization_name": org.name,
        "organization_display_name": org.display_name,
        "organization_icon": org.icon,
        "name": target.name,
        "display_name": target.display_name,
        "provisioner": "terraform",
        "active_version_id": str(target.active_version_id),
        "active_user_count": 0,
        "description": target.description,
        "icon": target.icon,
        "deprecated": target.deprecation_message != "",
        "deprecation_message": target.deprecation_message,
        "deleted": target.deleted,
        "created_by_id": str(target.created_by_id),
        "created_by_name": "" if creator is None else creator.username,
        "allow_user_cancel_workspace_jobs": True,
        "allow_user_autostart": True,
        "allow_user_autostop": True,
        "require_active_version": False,
        "max_port_share_level": "public",
    }


def group_sync_settings(settings: GroupSyncSettings, *, nil_mapping: bool) -> dict[str, Any]:
    """`GroupSyncSettings`. GET answers `{}` for an unset mapping; PATCH answers echo Go's
    nil map as `null` (`nil_mapping=True`)."""
    mapping: dict[str, list[str] | None] | None = settings.mapping
    if mapping is None and not nil_mapping:
        mapping = {}
    body: dict[str, Any] = {
        "field": settings.field,
        "mapping": None
        if mapping is None
        else {k: None if v is None else list(v) for k, v in mapping.items()},
        "regex_filter": settings.regex_filter,
        "auto_create_missing_groups": settings.auto_create_missing_groups,
    }
    if settings.legacy_group_name_mapping:
        body["legacy_group_name_mapping"] = dict(settings.legacy_group_name_mapping)
    return body
