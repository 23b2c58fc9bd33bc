"""Organizations and their members (contract §2)."""

from __future__ import annotations

import uuid
from typing import Any

from .. import authz, render
from ..errors import ApiError, bad_request, forbidden, not_found
from ..jsonbody import Spec, string_list
from ..models import ORG_ROLES, User
from ..query import parse_pagination, parse_user_query
from ..router import Ctx, Endpoint, Reply, organization_param, user_param
from .common import after_cursor, filter_users


def list_organizations(ctx: Ctx) -> Reply:
    orgs = sorted(ctx.state.organizations.values(), key=lambda o: o.created_at)
    return Reply(
        200,
        [render.organization(o) for o in orgs if authz.can_read_org(ctx.state, ctx.me, o)],
    )


def get_organization(ctx: Ctx) -> Reply:
    return Reply(200, render.organization(organization_param(ctx)))


def _member_rows(ctx: Ctx, org_id: uuid.UUID, users: list[User]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for member_user in users:
        membership = ctx.state.members[(org_id, member_user.id)]
        rows.append(render.organization_member_with_user(membership, member_user))
    return rows


def list_members(ctx: Ctx) -> Reply:
    org = organization_param(ctx)
    return Reply(200, _member_rows(ctx, org.id, ctx.state.org_members(org.id)))


def paginated_members(ctx: Ctx) -> Reply:
    """`{"members": [...], "count": n}`; `q` in the user search syntax (§4.2)."""
    org = organization_param(ctx)
    user_filter = parse_user_query(ctx.query_one("q"))
    pagination = parse_pagination(ctx.query)
    matching = filter_users(ctx.state.org_members(org.id), user_filter)
    users = after_cursor(ctx.state, matching, pagination.after_id)
    return Reply(
        200,
        {"members": _member_rows(ctx, org.id, pagination.apply(users)), "count": len(users)},
    )


def add_member(ctx: Ctx) -> Reply:
    """POST (no body) → 200 OrganizationMember; already a member → 400."""
    org = organization_param(ctx)
    target = user_param(ctx, must_read=False)
    if not authz.can_manage_members(ctx.state, ctx.me, org.id):
        raise forbidden()
    if ctx.state.is_member(org.id, target.id):
        raise bad_request("User is already an organization member")
    if target.login_type == "oidc" and ctx.state.config.organization_sync_enabled:
        raise bad_request(
            "Organization sync is enabled for OIDC users, meaning manual organization "
            "assignment is not allowed for this user.",
            "If you need to change this user's organizations, change the IdP claims or "
            "disable organization sync.",
        )
    membership = ctx.state.add_org_member(org, target)
    return Reply(200, render.organization_member(membership))


def remove_member(ctx: Ctx) -> Reply:
    """DELETE → 204; removing yourself → 400; the user's group memberships in the
    organization go too (trigger)."""
    org = organization_param(ctx)
    target = user_param(ctx, must_read=False)
    if not ctx.state.is_member(org.id, target.id):
        raise not_found()
    if not authz.can_manage_members(ctx.state, ctx.me, org.id):
        raise forbidden()
    if target.id == ctx.me.id:
        raise bad_request("cannot remove self from an organization")
    ctx.state.remove_org_member(org, target)
    return Reply(204)


ROLES_REQUEST = Spec("UpdateRoles", {"roles": string_list})


def update_member_roles(ctx: Ctx) -> Reply:
    org = organization_param(ctx)
    target = user_param(ctx, must_read=False)
    membership = ctx.state.member(org.id, target.id)
    if membership is None:
        raise not_found()
    body = ctx.read(ROLES_REQUEST)
    if not authz.can_manage_members(ctx.state, ctx.me, org.id):
        raise forbidden()
    roles: list[str] = body.get("roles", [])
    unknown = [r for r in roles if r not in ORG_ROLES]
    if unknown:
        raise ApiError(400, f'Invalid role "{unknown[0]}" for organization.')
    membership.roles = list(dict.fromkeys(roles))
    membership.updated_at = ctx.state.now()
    return Reply(200, render.organization_member(membership))


ENDPOINTS = [
    Endpoint("GET", "/api/v2/organizations", list_organizations),
    Endpoint("GET", "/api/v2/organizations/{organization}", get_organization),
    Endpoint("GET", "/api/v2/organizations/{organization}/members", list_members),
    Endpoint("GET", "/api/v2/organizations/{organization}/paginated-members", paginated_members),
    Endpoint("POST", "/api/v2/organizations/{organization}/members/{user}", add_member),
    Endpoint("DELETE", "/api/v2/organizations/{organization}/members/{user}", remove_member),
    Endpoint(
        "PUT", "/api/v2/organizations/{organization}/members/{user}/roles", update_member_roles
    ),
]
