"""Templates and template ACLs (contract §7). The bridge does not create templates: tests
and the demo use `CoderState.create_template`."""

from __future__ import annotations

import uuid
from typing import Any

from .. import authz, render
from ..errors import ApiError, Validation, forbidden, not_found
from ..jsonbody import Spec, boolean, map_of, string
from ..models import Template
from ..query import (
    TemplateFilter,
    ilike_contains,
    parse_pagination,
    parse_template_query,
    parse_user_query,
)
from ..router import (
    AUTH,
    PREMIUM,
    Ctx,
    Endpoint,
    Reply,
    organization_param,
    template_param,
    validation_failed,
)
from ..validation import display_name_valid, name_valid, parse_go_uuid, tag_failure
from .common import after_cursor, filter_users

ROLES = ("admin", "use")
UPDATE_ACL = Spec(
    "UpdateTemplateACL",
    {"user_perms": map_of(string, "string"), "group_perms": map_of(string, "string")},
)
UPDATE_META = Spec(
    "UpdateTemplateMeta",
    {
        "name": string,
        "display_name": string,
        "description": string,
        "icon": string,
        "deprecation_message": string,
        "disable_everyone_group_access": boolean,
    },
)


def _visible(ctx: Ctx, templates: list[Template]) -> list[dict[str, Any]]:
    rows = sorted(templates, key=lambda t: (t.name, str(t.id)))
    return [
        render.template(ctx.state, t) for t in rows if authz.can_read_template(ctx.state, ctx.me, t)
    ]


def list_org_templates(ctx: Ctx) -> Reply:
    org = organization_param(ctx)
    templates = [
        t for t in ctx.state.templates.values() if t.organization_id == org.id and not t.deleted
    ]
    return Reply(200, _visible(ctx, templates))


def get_org_template(ctx: Ctx) -> Reply:
    """By name, case-insensitively, among live templates of the organization."""
    org = organization_param(ctx)
    wanted = ctx.params["templatename"].lower()
    for template in ctx.state.templates.values():
        if (
            template.organization_id == org.id
            and not template.deleted
            and template.name.lower() == wanted
            and authz.can_read_template(ctx.state, ctx.me, template)
        ):
            return Reply(200, render.template(ctx.state, template))
    raise not_found()


def _matches(ctx: Ctx, template: Template, query: TemplateFilter, org_id: uuid.UUID | None) -> bool:
    if template.deleted != query.deleted:
        return False
    if org_id is not None and template.organization_id != org_id:
        return False
    if query.exact_name and template.name.lower() != query.exact_name.lower():
        return False
    if query.exact_display_name and (
        template.display_name.lower() != query.exact_display_name.lower()
    ):
        return False
    if query.name and not ilike_contains(template.name, query.name):
        return False
    if query.display_name and not ilike_contains(template.display_name, query.display_name):
        return False
    if query.ids and template.id not in query.ids:
        return False
    deprecated = template.deprecation_message != ""
    if query.deprecated is not None and deprecated != query.deprecated:
        return False
    if query.has_ai_task is True or query.has_external_agent is True:
        return False  # the double's templates have neither
    author_id = query.author_id
    if query.author == "me":
        author_id = ctx.me.id
    elif query.author:
        author = ctx.state.find_user_by_email_or_username("", query.author)
        if author is None or template.created_by_id != author.id:
            return False
    return author_id is None or template.created_by_id == author_id


def list_templates(ctx: Ctx) -> Reply:
    """`GET /templates?q=`: keys of §7; an unknown key → 400."""
    query, parser = parse_template_query(ctx.query_one("q"))
    org_id: uuid.UUID | None = None
    if query.organization:
        parsed = parse_go_uuid(query.organization)
        if parsed is None:
            org = ctx.state.find_org(query.organization)
            if org is None or query.organization == "default":
                parser.errors.append(
                    Validation(
                        "organization",
                        f'Query param "organization" has invalid value: organization '
                        f'"{query.organization}" either does not exist, or you are '
                        "unauthorized to view it",
                    )
                )
            else:
                parsed = org.id
        org_id = parsed
    if parser.errors:
        raise ApiError(400, "Invalid template search query.", "", parser.errors)
    templates = [t for t in ctx.state.templates.values() if _matches(ctx, t, query, org_id)]
    return Reply(200, _visible(ctx, templates))


def get_template(ctx: Ctx) -> Reply:
    return Reply(200, render.template(ctx.state, template_param(ctx)))


def patch_template(ctx: Ctx) -> Reply:
    """A subset of `UpdateTemplateMeta`; `disable_everyone_group_access` drops Everyone from
    the ACL. Nothing to change → 304."""
    template = template_param(ctx)
    body = ctx.read(UPDATE_META)
    failures: list[Validation] = []
    if "name" in body and body["name"] != "" and not name_valid(body["name"]):
        failures.append(tag_failure("name", "template_name", body["name"]))
    if "display_name" in body and not display_name_valid(body["display_name"]):
        failures.append(tag_failure("display_name", "template_display_name", body["display_name"]))
    if failures:
        raise validation_failed(failures)
    if not authz.can_admin_template(ctx.state, ctx.me, template):
        raise forbidden()
    changed = False
    for key in ("display_name", "description", "icon", "deprecation_message"):
        if key in body and getattr(template, key) != body[key]:
            setattr(template, key, body[key])
            changed = True
    if body.get("name") and body["name"] != template.name:
        template.name = body["name"]
        changed = True
    everyone = str(template.organization_id)
    if body.get("disable_everyone_group_access") and everyone in template.group_acl:
        del template.group_acl[everyone]
        changed = True
    if not changed:
        return Reply(304)
    template.updated_at = ctx.state.now()
    return Reply(200, render.template(ctx.state, template))


def get_acl(ctx: Ctx) -> Reply:
    """`TemplateACL`: `users` (User + role) and — singular — `group` (Group + role)."""
    template = template_param(ctx)
    users: list[dict[str, Any]] = []
    for key, role in template.user_acl.items():
        user_id = parse_go_uuid(key)
        found = None if user_id is None else ctx.state.find_user(user_id)
        if found is not None:
            users.append({**render.user(ctx.state, found), "role": role})
    groups: list[dict[str, Any]] = []
    for key, role in template.group_acl.items():
        group_id = parse_go_uuid(key)
        group = None if group_id is None else ctx.state.find_group(group_id)
        if group is not None:
            groups.append({**render.group(ctx.state, group), "role": role})
    return Reply(200, {"users": users, "group": groups})


def _validate_perms(ctx: Ctx, perms: dict[str, str], field: str, is_user: bool) -> list[Validation]:
    errors: list[Validation] = []
    for key, role in perms.items():
        if role != "" and role not in ROLES:
            errors.append(Validation(field, f'role "{role}" is not a valid template role'))
            continue
        target_id = parse_go_uuid(key)
        if target_id is None:
            errors.append(Validation(field, f"{key} is not a valid UUID."))
            continue
        if role == "":
            continue
        exists = (
            ctx.state.find_user(target_id) is not None
            if is_user
            else ctx.state.find_group(target_id) is not None
        )
        if not exists:
            kind = "user" if is_user else "group"
            errors.append(Validation(field, f"{kind} with ID {target_id} does not exist"))
    return errors


def patch_acl(ctx: Ctx) -> Reply:
    """A partial merge: roles `admin`/`use`, `""` removes; keys not mentioned stay."""
    template = template_param(ctx)
    body = ctx.read(UPDATE_ACL)
    user_perms: dict[str, str] = body.get("user_perms", {})
    group_perms: dict[str, str] = body.get("group_perms", {})
    errors = _validate_perms(ctx, user_perms, "user_perms", True)
    errors += _validate_perms(ctx, group_perms, "group_perms", False)
    if errors:
        raise ApiError(400, "Invalid request to update template ACL", "", errors)
    if not authz.can_admin_template(ctx.state, ctx.me, template):
        raise forbidden()
    for acl, perms in ((template.user_acl, user_perms), (template.group_acl, group_perms)):
        for key, role in perms.items():
            canonical = str(parse_go_uuid(key))
            if role == "":
                acl.pop(canonical, None)
            else:
                acl[canonical] = role
    template.updated_at = ctx.state.now()
    return Reply(200, {"message": "Successfully updated template ACL list."})


def acl_available(ctx: Ctx) -> Reply:
    """Users (`q`, `limit`) and the organization's groups (without members) that could be
    granted; needs update permission on the template (404 otherwise)."""
    template = template_param(ctx)
    if not authz.can_admin_template(ctx.state, ctx.me, template):
        raise not_found()
    user_filter = parse_user_query(ctx.query_one("q"))
    pagination = parse_pagination(ctx.query)
    users = after_cursor(
        ctx.state, filter_users(ctx.state.live_users(), user_filter), pagination.after_id
    )
    groups = [
        render.group(ctx.state, g, exclude_members=True)
        for g in ctx.state.groups.values()
        if g.organization_id == template.organization_id
    ]
    return Reply(
        200,
        {"users": [render.reduced_user(u) for u in pagination.apply(users)], "groups": groups},
    )


_ACL = (PREMIUM, AUTH)  # templateRBACEnabledMW, apiKeyMiddleware, template param
ENDPOINTS = [
    Endpoint("GET", "/api/v2/organizations/{organization}/templates", list_org_templates),
    Endpoint(
        "GET", "/api/v2/organizations/{organization}/templates/{templatename}", get_org_template
    ),
    Endpoint("GET", "/api/v2/templates", list_templates),
    Endpoint("GET", "/api/v2/templates/{template}", get_template),
    Endpoint("PATCH", "/api/v2/templates/{template}", patch_template),
    Endpoint("GET", "/api/v2/templates/{template}/acl", get_acl, _ACL),
    Endpoint("PATCH", "/api/v2/templates/{template}/acl", patch_acl, _ACL),
    Endpoint("GET", "/api/v2/templates/{template}/acl/available", acl_available, _ACL),
]
