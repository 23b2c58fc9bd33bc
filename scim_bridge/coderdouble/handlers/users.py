"""Users (contract §4) and API tokens (§1.2)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from .. import authz, render
from ..config import FEATURE_TITLES
from ..errors import ApiError, Validation, bad_request, forbidden, premium
from ..jsonbody import Spec, boolean, integer, string, string_list, uuid_list, uuid_value
from ..models import SITE_ROLES, User
from ..query import USER_STATUSES, parse_pagination, parse_user_query
from ..ratelimit import go_duration
from ..router import Ctx, Endpoint, Reply, user_param, validation_failed
from ..state import NIL_UUID
from ..validation import email_valid, name_valid, tag_failure, user_real_name_valid
from .common import after_cursor, filter_users

CREATE_USER = Spec(
    "CreateUserRequestWithOrgs",
    {
        "email": string,
        "username": string,
        "name": string,
        "password": string,
        "login_type": string,
        "user_status": string,
        "organization_ids": uuid_list,
        "organization_id": uuid_value,
        "service_account": boolean,
        "roles": string_list,
    },
)
ROLES = Spec("UpdateRoles", {"roles": string_list})
CREATE_TOKEN = Spec(
    "CreateTokenRequest",
    {"lifetime": integer, "token_name": string, "scope": string, "scopes": string_list},
)


def list_users(ctx: Ctx) -> Reply:
    """`{"users": [User], "count": n}`; `count` is every matching row, not the page."""
    user_filter = parse_user_query(ctx.query_one("q"))
    pagination = parse_pagination(ctx.query)
    readable = [u for u in ctx.state.live_users() if authz.can_read_user(ctx.state, ctx.me, u)]
    matching = after_cursor(ctx.state, filter_users(readable, user_filter), pagination.after_id)
    page = pagination.apply(matching)
    return Reply(200, {"users": [render.user(ctx.state, u) for u in page], "count": len(matching)})


def get_user(ctx: Ctx) -> Reply:
    return Reply(200, render.user(ctx.state, user_param(ctx)))


def _validate_create(body: dict[str, Any]) -> None:
    failures: list[Validation] = []
    email = body.get("email", "")
    if email == "" and not body.get("service_account", False):
        failures.append(tag_failure("email", "required_unless", email))
    elif email != "" and not email_valid(email):
        failures.append(tag_failure("email", "email", email))
    username = body.get("username", "")
    if username == "":
        failures.append(tag_failure("username", "required", username))
    elif not name_valid(username):
        failures.append(tag_failure("username", "username", username))
    name = body.get("name", "")
    if not user_real_name_valid(name):
        failures.append(tag_failure("name", "user_real_name", name))
    status = body.get("user_status")
    if status is not None and status not in USER_STATUSES:
        failures.append(tag_failure("user_status", "oneof", status))
    if failures:
        raise validation_failed(failures)


def create_user(ctx: Ctx) -> Reply:
    """`postUser` (contract §4.3) in Coder's order of checks."""
    body = ctx.read(CREATE_USER)
    _validate_create(body)
    state = ctx.state
    service_account: bool = body.get("service_account", False)
    if service_account and not state.config.entitled("service_accounts"):
        raise premium(FEATURE_TITLES["service_accounts"])
    login_type: str = body.get("login_type", "") or ("none" if service_account else "password")
    password: str = body.get("password", "")
    if login_type != "password" and password != "":
        raise bad_request(
            f'Password cannot be set for non-password ("{login_type}") authentication.'
        )
    org_ids: list[uuid.UUID] = list(body.get("organization_ids", []))
    if body.get("organization_id") not in (None, NIL_UUID):
        org_ids.append(body["organization_id"])
    if not org_ids:
        raise ApiError(
            400,
            "No organization specified to place the user as a member of. It is required to "
            "specify at least one organization id to place the user in.",
            "required at least 1 value for the array 'organization_ids'",
            [Validation("organization_ids", "Missing values, this cannot be empty")],
        )
    if state.find_user_by_email_or_username(body.get("email", ""), body["username"]) is not None:
        raise ApiError(409, "User already exists.")
    orgs = []
    for org_id in org_ids:
        org = state.find_org(org_id)
        if org is None:
            raise ApiError(404, f'Organization does not exist with the provided id "{org_id}".')
        orgs.append(org)
    if login_type == "password":
        if len(password) < 6:
            raise ApiError(
                400,
                "Password not strong enough!",
                "",
                [Validation("password", "password must be at least 6 characters long")],
            )
    elif login_type == "oidc":
        if not state.config.oidc_configured:
            raise bad_request("You must configure OIDC before creating OIDC users.")
    elif login_type not in ("none", "github"):
        raise bad_request(f'Unsupported login type "{login_type}" for manually creating new users.')
    roles: list[str] = body.get("roles", [])
    if not authz.can_manage_users(ctx.me) or ("owner" in roles and not authz.is_owner(ctx.me)):
        raise ApiError(403, "You are not authorized to create users.")
    unknown = [r for r in roles if r not in SITE_ROLES or r == "member"]
    if unknown:
        raise bad_request(f'Invalid site role "{unknown[0]}".')
    now = state.now()
    created = User(
        uuid.uuid4(),
        body["username"],
        body.get("email", ""),
        now,
        now,
        name=body.get("name", ""),
        status=body.get("user_status") or "dormant",
        login_type=login_type,
        is_service_account=service_account,
        roles=list(dict.fromkeys(roles)),
        password=password,
    )
    state.users[created.id] = created
    for org in orgs:
        state.add_org_member(org, created)  # a repeated organization is added once
    return Reply(201, render.user(state, created))


def _status(ctx: Ctx, status: str) -> Reply:
    target = user_param(ctx)
    if not authz.can_manage_users(ctx.me):
        raise forbidden()
    if status == "suspended":
        if target.id == ctx.me.id:
            raise bad_request("You cannot suspend yourself.")
        if "owner" in target.roles:
            raise bad_request(
                'You cannot suspend a user with the "owner" role. You must remove the role first.'
            )
    target.status = status
    target.updated_at = ctx.state.now()
    return Reply(200, render.user(ctx.state, target))


def suspend_user(ctx: Ctx) -> Reply:
    return _status(ctx, "suspended")


def activate_user(ctx: Ctx) -> Reply:
    return _status(ctx, "active")


def delete_user(ctx: Ctx) -> Reply:
    """Soft delete: 200 `User has been deleted!`; yourself → 403."""
    target = user_param(ctx)
    if target.id == ctx.me.id:
        raise ApiError(403, "You cannot delete yourself!")
    if not authz.can_manage_users(ctx.me):
        raise forbidden()
    ctx.state.delete_user(target)
    return Reply(200, {"message": "User has been deleted!"})


def user_organizations(ctx: Ctx) -> Reply:
    target = user_param(ctx)
    orgs = [ctx.state.organizations[i] for i in ctx.state.user_org_ids(target.id)]
    return Reply(200, [render.organization(o) for o in orgs])


def update_user_roles(ctx: Ctx) -> Reply:
    target = user_param(ctx)
    body = ctx.read(ROLES)
    roles: list[str] = body.get("roles", [])
    if not authz.can_manage_users(ctx.me):
        raise forbidden()
    unknown = [r for r in roles if r not in SITE_ROLES]
    if unknown:
        raise bad_request(f'Invalid site role "{unknown[0]}".')
    if ("owner" in roles) != ("owner" in target.roles) and not authz.is_owner(ctx.me):
        raise forbidden()
    target.roles = [r for r in dict.fromkeys(roles) if r != "member"]
    target.updated_at = ctx.state.now()
    return Reply(200, render.user(ctx.state, target))


def create_token(ctx: Ctx) -> Reply:
    """`POST /users/{user}/keys/tokens` → 201 `{"key"}`; lifetime (Go nanoseconds) is capped
    at 168h for owners (`CODER_MAX_ADMIN_TOKEN_LIFETIME`), ~100y for others."""
    target = user_param(ctx)
    body = ctx.read(CREATE_TOKEN)
    if target.id != ctx.me.id and not authz.is_owner(ctx.me):
        raise forbidden()
    config = ctx.state.config
    nanoseconds: int = body.get("lifetime", 0)
    cap = config.max_admin_token_lifetime if authz.is_owner(target) else config.max_token_lifetime
    lifetime = timedelta(microseconds=nanoseconds / 1000) if nanoseconds else cap
    if nanoseconds < 0:
        raise bad_request(
            "Failed to validate create API key request.",
            "lifetime must be positive number greater than 0",
        )
    if lifetime > cap:
        raise bad_request(
            "Failed to validate create API key request.",
            f"lifetime must be less than {go_duration(cap.total_seconds())}",
        )
    key = ctx.state.create_token(target, body.get("token_name", ""), lifetime)
    return Reply(201, {"key": key})


ENDPOINTS = [
    Endpoint("GET", "/api/v2/users", list_users),
    Endpoint("POST", "/api/v2/users", create_user),
    Endpoint("GET", "/api/v2/users/{user}", get_user),
    Endpoint("DELETE", "/api/v2/users/{user}", delete_user),
    Endpoint("PUT", "/api/v2/users/{user}/status/suspend", suspend_user),
    Endpoint("PUT", "/api/v2/users/{user}/status/activate", activate_user),
    Endpoint("GET", "/api/v2/users/{user}/organizations", user_organizations),
    Endpoint("PUT", "/api/v2/users/{user}/roles", update_user_roles),
    Endpoint("POST", "/api/v2/users/{user}/keys/tokens", create_token),
]
