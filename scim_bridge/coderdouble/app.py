"""The double as a Starlette application.

Every request goes through, in order: the call counter; the injected latency; for
`/api/v2`, the rate limiter (keyed by user or IP and endpoint path, with the owner-only
bypass header); routing (404 `Route not found.`); the route's middleware in Coder's order
(authentication → 401, licence gate → 403); the injected failure; the handler, which runs
under the state lock as one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from .clock import Clock
from .config import FEATURE_TITLES, TEMPLATE_RBAC, DoubleConfig
from .errors import ROUTE_NOT_FOUND, SIGNED_OUT, ApiError, envelope, internal, premium
from .faults import UNMATCHED
from .handlers import groups, idpsync, organizations, templates, testing, users
from .models import User
from .ratelimit import SlidingWindowLimiter, go_duration
from .router import AUTH, PREMIUM, Ctx, Endpoint, Reply, Router
from .state import CoderState

log = logging.getLogger("scim_bridge.coderdouble")

API_PREFIX = "/api/v2"
TEST_PREFIX = "/__double__"
BYPASS_HEADER = "X-Coder-Bypass-Ratelimit"
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

ENDPOINTS: list[Endpoint] = [
    *organizations.ENDPOINTS,
    *groups.ENDPOINTS,
    *users.ENDPOINTS,
    *idpsync.ENDPOINTS,
    *templates.ENDPOINTS,
    *testing.ENDPOINTS,
]


def _go_parse_bool(text: str) -> bool:
    return text in ("1", "t", "T", "TRUE", "true", "True")


def session_token(request: Request) -> str:
    """`APITokenFromRequest`: cookie, `?coder_session_token=`, `Coder-Session-Token`,
    `Authorization: Bearer` (prefix case-insensitive), `?access_token=`."""
    candidates = [
        request.cookies.get("coder_session_token", ""),
        request.query_params.get("coder_session_token", ""),
        request.headers.get("Coder-Session-Token", ""),
    ]
    authorization = request.headers.get("Authorization", "")
    if authorization[:7].lower() == "bearer ":
        candidates.append(authorization[7:].strip())
    candidates.append(request.query_params.get("access_token", ""))
    return next((c for c in candidates if c), "")


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(status_code=status, headers=headers)
    return JSONResponse(body, status_code=status, headers=headers)


def _error(error: ApiError, headers: dict[str, str] | None = None) -> Response:
    return _json(error.status, error.body(), headers)


class CoderDouble:
    """The request pipeline over one `CoderState`."""

    def __init__(self, state: CoderState, endpoints: Iterable[Endpoint] = ENDPOINTS) -> None:
        self.state = state
        self.router = Router(list(endpoints))
        self.limiter = SlidingWindowLimiter(
            lambda: state.config.rate_limit,
            lambda: state.config.rate_limit_window,
            state.clock,
        )

    async def handle(self, request: Request) -> Response:
        state = self.state
        method = request.method.upper()
        path = request.url.path
        endpoint, params, path_known = self.router.match(method, path)
        template = endpoint.template if endpoint is not None else UNMATCHED
        is_test = path.startswith(TEST_PREFIX)
        if not is_test:
            state.calls.record(method, template)
            delay = state.faults.delay()
            if delay > 0:
                await anyio.sleep(delay)
        body = await request.body()
        token = session_token(request)
        client = request.client.host if request.client else "127.0.0.1"

        headers: dict[str, str] = {}
        if path.startswith(API_PREFIX + "/") or path == API_PREFIX:
            limited = self._rate_limit(request, token, path, client, headers)
            if limited is not None:
                return limited
        if endpoint is None:
            if path_known:
                return Response(status_code=405, headers=headers)
            return _json(404, envelope(ROUTE_NOT_FOUND), headers)

        actor: User | None = None
        for gate in endpoint.gates:
            if gate == PREMIUM and not state.config.entitled(TEMPLATE_RBAC):
                return _error(premium(FEATURE_TITLES[TEMPLATE_RBAC]), headers)
            if gate == AUTH:
                actor, problem = self._authenticate(token)
                if actor is None:
                    return _error(ApiError(401, SIGNED_OUT, problem), headers)

        phase = None if is_test else state.faults.decide(method, template)
        if phase == "before":
            return _error(internal("injected fault (before the write)"), headers)
        ctx = Ctx(state, method, path, params, _query(request), body, actor, client)
        try:
            with state.lock:
                reply = endpoint.handler(ctx)
        except ApiError as error:
            return _error(error, headers)
        except Exception as error:  # an internal error, as Coder would answer it
            log.exception("coder double: %s %s failed", method, path)
            return _error(internal(str(error)), headers)
        if phase == "after" and 200 <= reply.status < 300:
            return _error(internal("injected fault (after the write was applied)"), headers)
        return _render(reply, headers)

    def _authenticate(self, token: str) -> tuple[User | None, str]:
        if not token:
            return None, 'Cookie "coder_session_token" or query parameter must be provided.'
        return self.state.authenticate(token)

    def _rate_limit(
        self, request: Request, token: str, path: str, client: str, headers: dict[str, str]
    ) -> Response | None:
        """`httpmw.RateLimit`: key = user ID (valid token) or IP, plus the endpoint path.
        An owner sending `X-Coder-Bypass-Ratelimit: true` is not limited; anyone else
        sending it gets httprate's plain-text 428."""
        config = self.state.config
        if config.rate_limit <= 0:
            return None
        user = self.state.peek(token) if token else None
        if _go_parse_bool(request.headers.get(BYPASS_HEADER, "")) and user is not None:
            if "owner" in user.roles:
                return None
            return PlainTextResponse(
                f'"{BYPASS_HEADER}" provided but user is not owner\n', status_code=428
            )
        key = f"{user.id if user is not None else client}|{path}"
        allowed = self.limiter.allow(key)
        if config.rate_limit_headers:
            headers["X-RateLimit-Limit"] = str(config.rate_limit)
            headers["X-RateLimit-Remaining"] = str(self.limiter.remaining(key))
            headers["X-RateLimit-Reset"] = str(self.limiter.reset_at())
        if allowed:
            return None
        if config.rate_limit_headers:
            headers["Retry-After"] = str(int(config.rate_limit_window))
        message = (
            f"You've been rate limited for sending more than {config.rate_limit} requests in "
            f"{go_duration(config.rate_limit_window)}."
        )
        return _json(429, envelope(message), headers)


def _query(request: Request) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        values.setdefault(key, []).append(value)
    return values


def _render(reply: Reply, headers: dict[str, str]) -> Response:
    return _json(reply.status, reply.body, headers)


def create_coder_double(
    config: DoubleConfig | None = None,
    clock: Clock | None = None,
    *,
    state: CoderState | None = None,
) -> tuple[Starlette, CoderState]:
    """A Starlette app that behaves like Coder's REST API (see coder-contract.md) and the
    state behind it. Serve it with uvicorn on a loopback address."""
    if state is None:
        state = CoderState(config, clock)
    double = CoderDouble(state)
    app = Starlette(routes=[Route("/{path:path}", double.handle, methods=METHODS)])
    app.state.coder = state
    return app, state
