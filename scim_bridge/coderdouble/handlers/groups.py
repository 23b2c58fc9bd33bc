"""Groups (contract §3): every endpoint of §3.1, the shapes of §3.2, the checks of §3.3 in
Coder's order, and the implicit Everyone group of §3.4."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from .. import authz, render
from ..errors import ApiError, Validation, bad_request, forbidden, invalid_query, not_found
from ..jsonbody import Spec, integer, string, string_list
from ..models import Group, Organization
from ..query import QueryParser, QueryValues, parse_pagination, parse_user_query
from ..router import (
    AUTH,
    PREMIUM,
    Ctx,
    Endpoint,
    Reply,
    group_param,
    organization_param,
    validation_failed,
)
from ..state import CoderState
from ..validation import (
    EVERYONE,
    display_name_valid,
    group_name_valid,
    parse_go_uuid,
    tag_failure,
)
from .common import after_cursor, filter_users

CREATE_GROUP = Spec(
    "CreateGroupRequest",
    {
        "name": string,
        "display_name": string,
        "avatar_url": string,
        "quota_allowance": integer,
    },
)
PATCH_GROUP = Spec(
    "PatchGroupRequest",
    {
        "add_users": string_list,
        "remove_users": string_list,
        "name": string,
        "display_name": string,
        "avatar_url": string,
        "quota_allowance": integer,
    },
)


def _validate_names(body: dict[str, Any], *, name_required: bool) -> None:
    """`validate:"required,group_name"` (create) / `"omitempty,group_name"` (patch) and
    `"omitempty,group_display_name"`."""
    failures: list[Validation] = []
    name = body.get("name", "")
    if name == "":
        if name_required:
            failures.append(tag_failure("name", "required", name))
    elif not group_name_valid(name):
        failures.append(tag_failure("name", "group_name", name))
    display = body.get("display_name", "")
    if display != "" and not display_name_valid(display):
        failures.append(tag_failure("display_name", "group_display_name", display))
    if failures:
        raise validation_failed(failures)


# --- listing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupFilter:
    organization_id: uuid.UUID | None
    member_id: uuid.UUID | None
    group_ids: list[uuid.UUID]

    def matches(self, state: CoderState, group: Group) -> bool:
        if self.organization_id is not None and group.organization_id != self.organization_id:
            return False
        if self.member_id is not None and not state.user_in_group(group, self.member_id):
            return False
        return not self.group_ids or group.id in self.group_ids


def _group_filter(ctx: Ctx, values: QueryValues) -> GroupFilter:
    """The strict parser of `GET /groups`: `organization` (UUID or name), `has_member`
    (UUID or username), `group_ids` (comma-separated UUIDs); anything else → 400."""
    parser = QueryParser()
    state = ctx.state

    def organization(value: str) -> uuid.UUID | None:
        if value == "":
            return None
        parsed = parse_go_uuid(value)
        if parsed is not None:
            return parsed
        org = next(
            (o for o in state.organizations.values() if o.name.lower() == value.lower()), None
        )
        if org is None:
            raise ValueError(
                f'Query param "organization" must be a valid uuid or name: '
                f'organization "{value}" not found'
            )
        return org.id

    def has_member(value: str) -> uuid.UUID | None:
        if value == "":
            return None
        parsed = parse_go_uuid(value)
        if parsed is not None:
            return parsed
        found = state.find_user_by_email_or_username("", value)
        if found is None:
            raise ValueError(
                f'Query param "has_member" must be a valid uuid or name: user "{value}" not found'
            )
        return found.id

    no_id: uuid.UUID | None = None
    found = GroupFilter(
        organization_id=parser.custom(values, no_id, "organization", organization),
        member_id=parser.custom(values, no_id, "has_member", has_member),
        group_ids=parser.uuids(values, "group_ids"),
    )
    parser.error_excess_params(values)
    if parser.errors:
        raise invalid_query(parser.errors)
    return found


def _list(ctx: Ctx, values: QueryValues) -> Reply:
    """Every matching group the caller may read, each with its full `members` (no
    pagination: the N+1 of Coder)."""
    query = _group_filter(ctx, values)
    return Reply(
        200,
        [
            render.group(ctx.state, group)
            for group in ctx.state.groups.values()
            if query.matches(ctx.state, group) and authz.can_read_group(ctx.state, ctx.me, group)
        ],
    )


def list_groups(ctx: Ctx) -> Reply:
    """`GET /groups?organization=&has_member=&group_ids=`: every group with all members."""
    return _list(ctx, ctx.query)


def list_org_groups(ctx: Ctx) -> Reply:
    """`GET /organizations/{org}/groups`: the same parser, `organization` set to the org."""
    org = organization_param(ctx)
    values = dict(ctx.query)
    values["organization"] = [str(org.id)]
    return _list(ctx, values)


def _group_by_name(ctx: Ctx) -> tuple[Organization, Group]:
    org = organization_param(ctx)
    group = ctx.state.group_by_name(org.id, ctx.params["groupName"])
    if group is None or not authz.can_read_group(ctx.state, ctx.me, group):
        raise not_found()
    return org, group


def get_org_group(ctx: Ctx) -> Reply:
    _, group = _group_by_name(ctx)
    return Reply(200, render.group(ctx.state, group))


def get_group(ctx: Ctx) -> Reply:
    group = group_param(ctx)
    parser = QueryParser()
    exclude = parser.boolean(ctx.query, False, "exclude_members")
    if parser.errors:
        raise invalid_query(parser.errors)
    return Reply(200, render.group(ctx.state, group, exclude_members=exclude))


def _members_page(ctx: Ctx, group: Group) -> Reply:
    """`GroupMembersResponse`: `{"users": [ReducedUser] | null, "count": n}`."""
    user_filter = parse_user_query(ctx.query_one("q"))
    pagination = parse_pagination(ctx.query)
    matching = filter_users(ctx.state.group_members(group), user_filter)
    matching = after_cursor(ctx.state, matching, pagination.after_id)
    page = pagination.apply(matching)
    users = [render.reduced_user(u) for u in page] or None
    return Reply(200, {"users": users, "count": len(matching)})


def get_group_members(ctx: Ctx) -> Reply:
    return _members_page(ctx, group_param(ctx))


def get_org_group_members(ctx: Ctx) -> Reply:
    return _members_page(ctx, _group_by_name(ctx)[1])


# --- writes -------------------------------------------------------------------------------


def create_group(ctx: Ctx) -> Reply:
    org = organization_param(ctx)
    body = ctx.read(CREATE_GROUP)
    _validate_names(body, name_required=True)
    name: str = body["name"]
    if name == EVERYONE:
        raise bad_request(
            "Invalid group name.",
            validations=[Validation("name", f'"{EVERYONE}" is a reserved group name')],
        )
    if not authz.can_manage_groups(ctx.state, ctx.me, org.id):
        raise forbidden()
    if ctx.state.group_by_name(org.id, name) is not None:
        raise ApiError(
            409,
            f'A group named "{name}" already exists.',
            "",
            [Validation("name", "Group names must be unique")],
        )
    group = Group(
        uuid.uuid4(),
        org.id,
        name,
        body.get("display_name", ""),
        body.get("avatar_url", ""),
        body.get("quota_allowance", 0),
        "user",
    )
    ctx.state.groups[group.id] = group
    return Reply(201, render.group(ctx.state, group))


def patch_group(ctx: Ctx) -> Reply:
    """The checks of §3.3 in order, then one all-or-nothing transaction."""
    group = group_param(ctx)
    body = ctx.read(PATCH_GROUP)
    _validate_names(body, name_required=False)
    if not authz.can_manage_groups(ctx.state, ctx.me, group.organization_id):
        raise forbidden()
    name: str = body.get("name", "")
    if name == group.name:
        name = ""  # same name: not a rename
    display: str | None = body.get("display_name")
    # 1. The Everyone group (id == organization id) keeps its name and display name.
    if group.is_everyone and name != "":
        raise bad_request(f'Cannot rename the "{EVERYONE}" group!')
    if group.is_everyone and display:
        raise bad_request(f'Cannot update the Display Name for the "{EVERYONE}" group!')
    # 2. Nobody else may take its name.
    if name == EVERYONE:
        raise bad_request(f'"{EVERYONE}" is a reserved group name!')
    add_users: list[str] = body.get("add_users", [])
    remove_users: list[str] = body.get("remove_users", [])
    # 3. Membership of the group named Everyone is implicit.
    if (add_users or remove_users) and group.name == EVERYONE:
        raise ApiError(403, f'Cannot add or remove users from the "{EVERYONE}" group!')
    # 4. Every id is a UUID of a current member of the group's organization.
    parsed_add: list[uuid.UUID] = []
    parsed_remove: list[uuid.UUID] = []
    for raw, target in [(r, parsed_add) for r in add_users] + [
        (r, parsed_remove) for r in remove_users
    ]:
        user_id = parse_go_uuid(raw)
        if user_id is None:
            raise bad_request(f'ID "{raw}" must be a valid user UUID.')
        if not ctx.state.is_member(group.organization_id, user_id):
            raise bad_request(f'User must be a member of organization "{group.name}"')
        target.append(user_id)
    # 5. A rename onto an existing name.
    if name != "" and ctx.state.group_by_name(group.organization_id, name) is not None:
        raise ApiError(409, f'A group with name "{name}" already exists.')
    # 6. One transaction: fields, inserts (a duplicate rolls everything back), deletes.
    members = dict(group.members)
    for user_id in parsed_add:
        if user_id in members:
            raise bad_request(
                "Cannot add the same user to a group twice!",
                f'insert group member "{user_id}": pq: duplicate key value violates unique '
                'constraint "group_members_user_id_group_id_key"',
            )
        members[user_id] = None
    for user_id in parsed_remove:
        members.pop(user_id, None)  # removing a non-member is a no-op
    if name != "":
        group.name = name
    if display is not None:
        group.display_name = display
    if "avatar_url" in body:
        group.avatar_url = body["avatar_url"]
    if "quota_allowance" in body:
        group.quota_allowance = body["quota_allowance"]
    group.members = members
    return Reply(200, render.group(ctx.state, group))


def delete_group(ctx: Ctx) -> Reply:
    group = group_param(ctx)
    if not authz.can_manage_groups(ctx.state, ctx.me, group.organization_id):
        raise forbidden()
    if group.name == EVERYONE:
        raise bad_request(f'"{EVERYONE}" is a reserved group and cannot be deleted!')
    del ctx.state.groups[group.id]  # ACL entries and mapping UUIDs are left dangling
    return Reply(200, {"message": "Successfully deleted group!"})


_ORG = (AUTH, PREMIUM)  # apiKeyMiddleware, templateRBACEnabledMW, organization param
_GLOBAL = (PREMIUM, AUTH)  # templateRBACEnabledMW, apiKeyMiddleware

ENDPOINTS = [
    Endpoint("GET", "/api/v2/organizations/{organization}/groups", list_org_groups, _ORG),
    Endpoint("POST", "/api/v2/organizations/{organization}/groups", create_group, _ORG),
    Endpoint("GET", "/api/v2/organizations/{organization}/groups/{groupName}", get_org_group, _ORG),
    Endpoint(
        "GET",
        "/api/v2/organizations/{organization}/groups/{groupName}/members",
        get_org_group_members,
        _ORG,
    ),
    Endpoint("GET", "/api/v2/groups", list_groups, _GLOBAL),
    Endpoint("GET", "/api/v2/groups/{group}", get_group, _GLOBAL),
    Endpoint("PATCH", "/api/v2/groups/{group}", patch_group, _GLOBAL),
    Endpoint("DELETE", "/api/v2/groups/{group}", delete_group, _GLOBAL),
    Endpoint("GET", "/api/v2/groups/{group}/members", get_group_members, _GLOBAL),
]
