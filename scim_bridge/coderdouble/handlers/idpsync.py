"""IdP group-sync settings per organization (contract §5.1). Not licence-gated; the caller
needs `read`/`update` on `idpsync_settings` in the organization (else 403 `Forbidden.`)."""

from __future__ import annotations

import uuid
from typing import Any

from .. import authz, render
from ..errors import ApiError, Validation, forbidden, invalid_query
from ..groupsync import effective_settings
from ..jsonbody import Spec, boolean, list_of, map_of, nested, regex, string, uuid_list, uuid_value
from ..models import GroupSyncSettings, Organization
from ..query import QueryParser
from ..router import Ctx, Endpoint, Reply, organization_param

SETTINGS = Spec(
    "GroupSyncSettings",
    {
        "field": string,
        "mapping": map_of(uuid_list, "[]uuid.UUID", keep_null=True),
        "regex_filter": regex,
        "auto_create_missing_groups": boolean,
        "legacy_group_name_mapping": map_of(string, "string"),
    },
)
CONFIG = Spec(
    "PatchGroupIDPSyncConfigRequest",
    {"field": string, "regex_filter": regex, "auto_create_missing_groups": boolean},
)
# The Go structs have no JSON tags: the SDK sends `Add`/`Given`; Go matches any case.
MAPPING_ENTRY = Spec("IDPSyncMapping", {"Given": string, "Gets": uuid_value})
MAPPING = Spec(
    "PatchGroupIDPSyncMappingRequest",
    {
        "Add": list_of(nested(MAPPING_ENTRY), "IDPSyncMapping"),
        "Remove": list_of(nested(MAPPING_ENTRY), "IDPSyncMapping"),
    },
)
NIL = uuid.UUID(int=0)


def _authorized_org(ctx: Ctx, *, write: bool) -> Organization:
    org = organization_param(ctx)
    if not authz.can_idpsync(ctx.state, ctx.me, org.id, write=write):
        raise forbidden()
    return org


def get_settings(ctx: Ctx) -> Reply:
    org = _authorized_org(ctx, write=False)
    settings = effective_settings(ctx.state, org.id)
    return Reply(200, render.group_sync_settings(settings, nil_mapping=False))


def patch_settings(ctx: Ctx) -> Reply:
    """Full replace: an omitted `mapping` clears the mapping (answered as `null`)."""
    org = _authorized_org(ctx, write=True)
    body = ctx.read(SETTINGS)
    if body.get("legacy_group_name_mapping"):
        raise ApiError(
            400,
            "Unexpected field 'legacy_group_name_mapping'. Field not allowed, set to null or "
            "remove it.",
            "legacy_group_name_mapping is deprecated, use mapping instead",
            [
                Validation(
                    "legacy_group_name_mapping",
                    "field is not allowed to be set, it is deprecated",
                )
            ],
        )
    mapping: dict[str, list[uuid.UUID] | None] | None = body.get("mapping")
    settings = GroupSyncSettings(
        field=body.get("field", ""),
        mapping=None
        if mapping is None
        else {k: None if v is None else [str(i) for i in v] for k, v in mapping.items()},
        regex_filter=body.get("regex_filter"),
        auto_create_missing_groups=body.get("auto_create_missing_groups", False),
    )
    ctx.state.group_sync[org.id] = settings
    return Reply(200, render.group_sync_settings(settings, nil_mapping=True))


def patch_config(ctx: Ctx) -> Reply:
    """Replaces field, regex_filter and auto_create (omitted = zero value); keeps the
    mapping and the legacy name mapping."""
    org = _authorized_org(ctx, write=True)
    body = ctx.read(CONFIG)
    settings = effective_settings(ctx.state, org.id)
    settings.field = body.get("field", "")
    settings.regex_filter = body.get("regex_filter")
    settings.auto_create_missing_groups = body.get("auto_create_missing_groups", False)
    ctx.state.group_sync[org.id] = settings
    return Reply(200, render.group_sync_settings(settings, nil_mapping=True))


def patch_mapping(ctx: Ctx) -> Reply:
    """`applyIDPSyncMappingDiff`: copy; append each add if absent; then delete each remove
    (remove wins). A list emptied stays `[]`; removing from an absent key leaves `null`."""
    org = _authorized_org(ctx, write=True)
    body = ctx.read(MAPPING)
    settings = effective_settings(ctx.state, org.id)
    mapping: dict[str, list[str] | None] = {
        k: None if v is None else list(v) for k, v in (settings.mapping or {}).items()
    }
    entries: list[dict[str, Any] | None]
    entries = body.get("Add", [])
    for entry in entries:
        given, gets = _entry(entry)
        current = mapping.get(given) or []
        if gets not in current:
            mapping[given] = [*current, gets]
    entries = body.get("Remove", [])
    for entry in entries:
        given, gets = _entry(entry)
        current_list = mapping.get(given)
        mapping[given] = None if current_list is None else [i for i in current_list if i != gets]
    settings.mapping = mapping
    ctx.state.group_sync[org.id] = settings
    return Reply(200, render.group_sync_settings(settings, nil_mapping=True))


def _entry(entry: dict[str, Any] | None) -> tuple[str, str]:
    decoded = entry or {}
    gets: uuid.UUID = decoded.get("Gets", NIL)
    return decoded.get("Given", ""), str(gets)


def _claims(ctx: Ctx, org: Organization | None) -> list[dict[str, Any]]:
    return [
        claims
        for user_id, claims in ctx.state.claims_seen
        if org is None or ctx.state.is_member(org.id, user_id)
    ]


def _fields(claims: list[dict[str, Any]]) -> list[str]:
    return sorted({key for c in claims for key in c})


def _values(claims: list[dict[str, Any]], field: str) -> list[str]:
    values: set[str] = set()
    for c in claims:
        value = c.get(field)
        if isinstance(value, str):
            values.add(value)
        elif isinstance(value, list):
            values.update(v for v in value if isinstance(v, str))
    return sorted(values)


def _claim_field(ctx: Ctx) -> str:
    parser = QueryParser()
    parser.required_not_empty(ctx.query, "claimField")
    field = parser.string(ctx.query, "", "claimField")
    if parser.errors:
        raise invalid_query(parser.errors)
    return field


def org_available_fields(ctx: Ctx) -> Reply:
    org = _authorized_org(ctx, write=False)
    return Reply(200, _fields(_claims(ctx, org)))


def org_field_values(ctx: Ctx) -> Reply:
    org = _authorized_org(ctx, write=False)
    return Reply(200, _values(_claims(ctx, org), _claim_field(ctx)))


def deployment_available_fields(ctx: Ctx) -> Reply:
    if not authz.can_manage_users(ctx.me):
        raise forbidden()
    return Reply(200, _fields(_claims(ctx, None)))


def deployment_field_values(ctx: Ctx) -> Reply:
    if not authz.can_manage_users(ctx.me):
        raise forbidden()
    return Reply(200, _values(_claims(ctx, None), _claim_field(ctx)))


_BASE = "/api/v2/organizations/{organization}/settings/idpsync"
ENDPOINTS = [
    Endpoint("GET", f"{_BASE}/groups", get_settings),
    Endpoint("PATCH", f"{_BASE}/groups", patch_settings),
    Endpoint("PATCH", f"{_BASE}/groups/config", patch_config),
    Endpoint("PATCH", f"{_BASE}/groups/mapping", patch_mapping),
    Endpoint("GET", f"{_BASE}/available-fields", org_available_fields),
    Endpoint("GET", f"{_BASE}/field-values", org_field_values),
    Endpoint("GET", "/api/v2/settings/idpsync/available-fields", deployment_available_fields),
    Endpoint("GET", "/api/v2/settings/idpsync/field-values", deployment_field_values),
]
