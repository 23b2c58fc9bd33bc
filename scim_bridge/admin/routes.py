"""The admin inspection API, mounted at /admin/api: health, the tree, who is in what and why,
and reloading the hierarchy file. JSON only; every request needs an admin bearer token
(``scim-bridge token create --scope admin --name NAME``). SCIM tokens do not open it, and
admin tokens do not open the SCIM routes. Errors are ``{"error": ..., "detail": ...}``.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth import TOKEN_PREFIX, TokenStore
from ..coder.acl import TemplateIsolationError
from ..coder.client import CoderError
from ..config import Settings
from ..hierarchy.service import HierarchyService, NotFound
from ..store.db import Database
from ..store.tables import EFFECTIVE, GROUPS, HIERARCHY_STATE, MEMBERS, USERS
from ..sync.templates import TOKEN_HINT
from ..sync.worker import SyncWorker

ADMIN_SCOPE = "admin"
CREATE_TOKEN_HINT = "create one with `scim-bridge token create --scope admin --name <you>`"


def error_response(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The admin API's error object: what was wrong (``error``) and what to do (``detail``)."""
    return JSONResponse({"error": error, "detail": detail}, status_code=status, headers=headers)


class BadParameter(ValueError):
    """A query parameter has a value the endpoint cannot use."""

    def __init__(self, name: str, detail: str):
        super().__init__(detail)
        self.name = name


class RequireAdminToken:
    """ASGI middleware: only requests with ``Authorization: Bearer <admin token>`` pass."""

    def __init__(self, app: ASGIApp, tokens: TokenStore):
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = await self._refusal(Request(scope))
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def _refusal(self, request: Request) -> Response | None:
        challenge = {"WWW-Authenticate": 'Bearer realm="scim-bridge admin"'}
        scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            return error_response(
                401,
                "admin token required",
                "send `Authorization: Bearer <admin token>`; " + CREATE_TOKEN_HINT,
                challenge,
            )
        try:
            principal = (
                await self.tokens.verify(credentials, ADMIN_SCOPE)
                if credentials.startswith(TOKEN_PREFIX)
                else None
            )
        except SQLAlchemyError as error:
            return error_response(
                503,
                "database unreachable",
                f"the admin token could not be checked ({_first_line(error)}); "
                "check database_url and that the database is up",
            )
        if principal is None:
            return error_response(
                401,
                "invalid admin token",
                "the bearer token is not an admin token (SCIM tokens do not work here, and a "
                "revoked token stops working); " + CREATE_TOKEN_HINT,
                challenge,
            )
        return None


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _int_parameter(request: Request, name: str, default: int, minimum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(
            name, f"{name}={raw!r} is not an integer; give a whole number ≥ {minimum}"
        ) from None
    if value < minimum:
        raise BadParameter(name, f"{name}={value} is too small; give a whole number ≥ {minimum}")
    return value


class AdminApi:
    """The endpoints, over the application's database and hierarchy service."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        hierarchy: HierarchyService,
        tokens: TokenStore,
        sync_worker: SyncWorker | None = None,
    ):
        self.settings = settings
        self.database = database
        self.hierarchy = hierarchy
        self.tokens = tokens
        self.sync_worker = sync_worker

    async def health(self, _: Request) -> Response:
        """Database reachable, the tree version in force, and counts."""
        try:
            async with self.database.transaction(write=False) as connection:
                state = (
                    await connection.execute(
                        select(HIERARCHY_STATE.c.version, HIERARCHY_STATE.c.spec_source).where(
                            HIERARCHY_STATE.c.id == 1
                        )
                    )
                ).first()
                users = (
                    await connection.execute(select(func.count()).select_from(USERS))
                ).scalar_one()
                active = (
                    await connection.execute(
                        select(func.count()).select_from(USERS).where(USERS.c.active.is_(True))
                    )
                ).scalar_one()
                groups = (
                    await connection.execute(select(func.count()).select_from(GROUPS))
                ).scalar_one()
                edges = (
                    await connection.execute(
                        select(func.count())
                        .select_from(MEMBERS)
                        .where(MEMBERS.c.member_type == "Group")
                    )
                ).scalar_one()
                effective = (
                    await connection.execute(select(func.count()).select_from(EFFECTIVE))
                ).scalar_one()
        except SQLAlchemyError as error:
            return error_response(
                503,
                "database unreachable",
                f"{_first_line(error)}; check database_url and that the database is up "
                "(PostgreSQL: run `scim-bridge db upgrade`)",
            )
        return JSONResponse(
            {
                "status": "ok",
                "database": {"reachable": True, "dialect": self.database.dialect},
                "tree": {
                    "version": state.version if state else None,
                    "hierarchyFile": state.spec_source if state else None,
                    "namingDelimiter": self.settings.hierarchy.naming_delimiter,
                },
                "counts": {
                    "users": int(users),
                    "activeUsers": int(active),
                    "groups": int(groups),
                    "scimNestingEdges": int(edges),
                    "effectiveMemberships": int(effective),
                },
            }
        )

    async def tree(self, _: Request) -> Response:
        return JSONResponse(await self.hierarchy.tree_view())

    async def group(self, request: Request) -> Response:
        ref = request.path_params["ref"]
        try:
            start = _int_parameter(request, "startIndex", 1, 1)
            count = _int_parameter(request, "count", self.settings.default_page_size, 0)
        except BadParameter as problem:
            return error_response(400, f"bad parameter {problem.name}", str(problem))
        count = min(count, self.settings.max_page_size)
        try:
            view = await self.hierarchy.group_view(ref, offset=start - 1, limit=count)
        except NotFound as missing:
            return _not_found(missing)
        return JSONResponse(view)

    async def user(self, request: Request) -> Response:
        ref = request.path_params["ref"]
        group = request.query_params.get("group")
        if group is not None and not group.strip():
            return error_response(
                400,
                "bad parameter group",
                "group= is empty; name a group by id, displayName or externalId, or leave it out",
            )
        try:
            view = await self.hierarchy.user_view(ref, group)
        except NotFound as missing:
            return _not_found(missing)
        return JSONResponse(view)

    async def reload(self, _: Request) -> Response:
        outcome = await self.hierarchy.reload()
        if outcome.applied:
            return JSONResponse({"applied": True, "message": outcome.message})
        file = self.hierarchy.settings.file or "FILE"
        return JSONResponse(
            {
                "error": "hierarchy file rejected",
                "detail": f"{outcome.message}\nfix the file (`scim-bridge hierarchy check "
                f"{file}` lists every problem) and reload again",
                "applied": False,
            },
            status_code=409,
        )

    async def sync_status(self, _: Request) -> Response:
        """Pending changes and the last incremental and full runs (failures with Coder's
        message, pending users, changes made)."""
        if self.sync_worker is None:
            return _sync_off()
        return JSONResponse(await self.sync_worker.engine.status())

    async def sync_now(self, _: Request) -> Response:
        """Start a full resync now (the worker runs it; see GET /sync for its report)."""
        if self.sync_worker is None:
            return _sync_off()
        self.sync_worker.request_full_sync()
        return JSONResponse({"requested": True}, status_code=202)

    async def templates(self, _: Request) -> Response:
        """Each department's templates and their ACLs as they are in Coder now: every entry
        with its role, what the bridge would make of it and why (read live, applies nothing)."""
        if self.sync_worker is None:
            return _sync_off()
        engine = self.sync_worker.engine
        if not engine.templates.enabled:
            return error_response(
                409,
                "template isolation is off",
                "no department is configured: add coder.template_isolation.departments "
                "(docs/template-isolation.md)",
            )
        try:
            organization = await engine.client.organization(self.settings.coder.organization)
            plan = await engine.templates.plan(organization.id)
        except TemplateIsolationError as error:
            return error_response(409, "template isolation misconfigured", str(error))
        except CoderError as error:
            hint = f"; {TOKEN_HINT}" if error.status in (403, 404) else ""
            return error_response(502, "Coder refused a read", f"{error}{hint}")
        last = (await engine.status())["last_runs"]
        body = plan.as_json()
        body["pending_corrections"] = plan.corrections()
        body["last_corrections"] = {
            kind: run.get("template_corrections", []) for kind, run in last.items()
        }
        return JSONResponse(body)

    def app(self) -> Starlette:
        async def http_error(_: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            if exc.status_code == 404:
                detail = (
                    "no such admin endpoint; see docs/admin.md (GET /admin/api/health, /tree, "
                    "/groups/{ref}, /users/{ref}, /sync, /templates; POST "
                    "/admin/api/hierarchy/reload, /sync)"
                )
            elif exc.status_code == 405:
                detail = "this endpoint does not take that method; see docs/admin.md"
            else:
                detail = str(exc.detail)
            return error_response(
                exc.status_code, str(exc.detail).lower(), detail, dict(exc.headers or {})
            )

        async def database_error(_: Request, exc: Exception) -> Response:
            return error_response(
                503,
                "database unreachable",
                f"{_first_line(exc)}; check database_url and that the database is up, "
                "then try again",
            )

        return Starlette(
            routes=[
                Route("/health", self.health, methods=["GET"]),
                Route("/tree", self.tree, methods=["GET"]),
                Route("/groups/{ref:path}", self.group, methods=["GET"]),
                Route("/users/{ref:path}", self.user, methods=["GET"]),
                Route("/hierarchy/reload", self.reload, methods=["POST"]),
                Route("/sync", self.sync_status, methods=["GET"]),
                Route("/sync", self.sync_now, methods=["POST"]),
                Route("/templates", self.templates, methods=["GET"]),
            ],
            middleware=[Middleware(RequireAdminToken, tokens=self.tokens)],
            exception_handlers={HTTPException: http_error, OperationalError: database_error},
        )


def _sync_off() -> Response:
    return error_response(
        409,
        "sync is off",
        "no Coder is configured: set coder.url and SCIM_BRIDGE_CODER__TOKEN (docs/coder.md)",
    )


def _not_found(missing: NotFound) -> Response:
    what = missing.kind if missing.kind in ("user", "group") else "resource"
    matched = "userName" if what == "user" else "displayName"
    return error_response(
        404,
        f"{what} not found: {missing.ref}",
        f"{missing}; a {what} is found by its id or externalId (exactly) or its {matched} "
        "(case-insensitively); check the spelling, or whether the IdP has provisioned it yet",
    )
