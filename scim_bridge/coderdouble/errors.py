"""Coder's error envelope (contract §1.3) and the standard messages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SIGNED_OUT = "You are signed out or your session has expired. Please sign in again to continue."
NOT_FOUND = "Resource not found or you do not have access to this resource"
ROUTE_NOT_FOUND = "Route not found."
FORBIDDEN = "Forbidden."
FORBIDDEN_DETAIL = (
    "You don't have permission to view this content. If you believe this is a mistake, "
    "please contact your administrator or try signing in with different credentials."
)
INVALID_JSON = "Request body must be valid JSON."
VALIDATION_FAILED = "Validation failed."
INVALID_QUERY = "Query parameters have invalid values."
INTERNAL = "An internal server error occurred."


@dataclass(frozen=True)
class Validation:
    field: str
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "detail": self.detail}


@dataclass
class ApiError(Exception):
    """An error answered as Coder's `codersdk.Response`: `detail` and `validations` omitempty."""

    status: int
    message: str
    detail: str = ""
    validations: list[Validation] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status} {self.message}"

    def body(self) -> dict[str, Any]:
        return envelope(self.message, self.detail, self.validations)


def envelope(
    message: str, detail: str = "", validations: list[Validation] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"message": message}
    if detail:
        body["detail"] = detail
    if validations:
        body["validations"] = [v.to_json() for v in validations]
    return body


def not_found() -> ApiError:
    return ApiError(404, NOT_FOUND)


def forbidden() -> ApiError:
    return ApiError(403, FORBIDDEN, FORBIDDEN_DETAIL)


def bad_request(
    message: str, detail: str = "", validations: list[Validation] | None = None
) -> ApiError:
    return ApiError(400, message, detail, list(validations or []))


def invalid_query(validations: list[Validation]) -> ApiError:
    return ApiError(400, INVALID_QUERY, "", validations)


def internal(detail: str = "") -> ApiError:
    return ApiError(500, INTERNAL, detail)


def premium(feature_title: str) -> ApiError:
    return ApiError(403, f"{feature_title} is a Premium feature. Contact sales!")
