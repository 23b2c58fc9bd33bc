"""Routing like chi in coderd: path templates, per-route middleware order (authentication,
licence gate), and the URL-parameter extractors of `coderd/httpmw` (organization, user,
group, template)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import authz
from .errors import VALIDATION_FAILED, ApiError, Validation, not_found
from .jsonbody import Spec, read_body
from .models import Group, Organization, Template, User
from .query import QueryValues
from .state import CoderState
from .validation import go_uuid_error, parse_go_uuid

AUTH = "auth"
PREMIUM = "premium"  # the `template_rbac` entitlement (`templateRBACEnabledMW`)


@dataclass
class Ctx:
    """One request, as a handler sees it (handlers run under `state.lock`)."""

    state: CoderState
    method: str
    path: str
    params: dict[str, str]
    query: QueryValues
    body: bytes
    actor: User | None
    client: str = "127.0.0.1"

    @property
    def me(self) -> User:
        if self.actor is None:  # routes without AUTH never ask
            raise ApiError(401, "not authenticated")
        return self.actor

    def read(self, spec: Spec) -> dict[str, Any]:
        return read_body(self.body, spec)

    def query_one(self, name: str) -> str:
        return (self.query.get(name) or [""])[0]


@dataclass
class Reply:
    status: int
    body: Any = None


Handler = Callable[[Ctx], Reply]


@dataclass(frozen=True)
class Endpoint:
    method: str
    template: str
    handler: Handler
    gates: tuple[str, ...] = (AUTH,)


@dataclass
class Router:
    endpoints: list[Endpoint] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._compiled: list[tuple[re.Pattern[str], Endpoint]] = []
        for endpoint in self.endpoints:
            self._add(endpoint)

    def _add(self, endpoint: Endpoint) -> None:
        pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(endpoint.template))
        self._compiled.append((re.compile(f"^{pattern}$"), endpoint))

    def add(self, endpoint: Endpoint) -> None:
        self.endpoints.append(endpoint)
        self._add(endpoint)

    def match(self, method: str, path: str) -> tuple[Endpoint | None, dict[str, str], bool]:
        """(endpoint, params, path_known). chi ignores one trailing slash on sub-routes."""
        if len(path) > 1 and path.endswith("/"):
            path = path[:-1]
        path_known = False
        for pattern, endpoint in self._compiled:
            found = pattern.match(path)
            if found is None:
                continue
            path_known = True
            if endpoint.method == method or (method == "HEAD" and endpoint.method == "GET"):
                return endpoint, dict(found.groupdict()), True
        return None, {}, path_known

    def template_for(self, method: str, path: str) -> str | None:
        endpoint, _, _ = self.match(method, path)
        return None if endpoint is None else endpoint.template


# --- URL parameter extraction (coderd/httpmw) -----------------------------------------------


def parse_uuid_param(ctx: Ctx, name: str) -> uuid.UUID:
    """`ParseUUIDParam`: 400 `Invalid UUID "<x>".`"""
    raw = ctx.params[name]
    parsed = parse_go_uuid(raw)
    if parsed is None:
        raise ApiError(400, f'Invalid UUID "{raw}".', go_uuid_error(raw))
    return parsed


def organization_param(ctx: Ctx) -> Organization:
    """`ExtractOrganizationParam`: UUID, name or `default`; unknown or unreadable: 404."""
    org = ctx.state.find_org(ctx.params["organization"])
    if org is None or not authz.can_read_org(ctx.state, ctx.me, org):
        raise not_found()
    return org


def user_param(ctx: Ctx, *, must_read: bool = True) -> User:
    """`ExtractUserParam`: `me`, a UUID or a username (case-insensitive); else 404."""
    raw = ctx.params["user"]
    found = ctx.me if raw == "me" else ctx.state.find_user(raw)
    if found is None or (must_read and not authz.can_read_user(ctx.state, ctx.me, found)):
        raise not_found()
    return found


def group_param(ctx: Ctx) -> Group:
    """`ExtractGroupParam`: a UUID (400 otherwise); unknown or unreadable: 404."""
    group_id = parse_uuid_param(ctx, "group")
    found = ctx.state.find_group(group_id)
    if found is None or not authz.can_read_group(ctx.state, ctx.me, found):
        raise not_found()
    return found


def template_param(ctx: Ctx) -> Template:
    """`ExtractTemplateParam`: a UUID; unknown, deleted or unreadable: 404."""
    template_id = parse_uuid_param(ctx, "template")
    found = ctx.state.find_template(template_id)
    if found is None or found.deleted or not authz.can_read_template(ctx.state, ctx.me, found):
        raise not_found()
    return found


def validation_failed(validations: list[Validation]) -> ApiError:
    return ApiError(400, VALIDATION_FAILED, "", validations)
