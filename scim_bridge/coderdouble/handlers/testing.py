"""Test-only endpoints, outside `/api/v2` (Coder has nothing like them): simulate what
happens outside the REST API, such as a user's OIDC login (contract §9)."""

from __future__ import annotations

from typing import Any

from ..errors import ApiError, not_found
from ..groupsync import LoginRefused
from ..jsonbody import JsonTypeError, Spec, string
from ..router import Ctx, Endpoint, Reply


def _claims(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise JsonTypeError(f"{where}: claims must be a JSON object")
    return value


LOGIN = Spec("SimulatedLogin", {"user": string, "claims": _claims})


def simulated_login(ctx: Ctx) -> Reply:
    """`POST /__double__/login {"user": "<uuid|username>", "claims": {...}}` runs the
    login-time group sync and answers what it changed."""
    body = ctx.read(LOGIN)
    user = ctx.state.find_user(body.get("user", ""))
    if user is None:
        raise not_found()
    try:
        result = ctx.state.login(user, body.get("claims", {}))
    except LoginRefused as refused:
        raise ApiError(refused.status, refused.message) from refused
    return Reply(200, result.to_json())


ENDPOINTS = [Endpoint("POST", "/__double__/login", simulated_login, gates=())]
