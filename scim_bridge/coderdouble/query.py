"""Query strings the way Coder parses them: `httpapi.QueryParamParser` (strict endpoints),
`parsePagination`, and the `q` search syntax of `coderd/searchquery` (contract §4.2, §7)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from .errors import ApiError, Validation, invalid_query
from .validation import parse_go_uuid

QueryValues = dict[str, list[str]]
T = TypeVar("T")

USER_STATUSES = ("active", "dormant", "suspended")
LOGIN_TYPES = ("password", "github", "oidc", "token", "none")


def query_values(items: list[tuple[str, str]]) -> QueryValues:
    values: QueryValues = {}
    for key, value in items:
        values.setdefault(key, []).append(value)
    return values


class QueryParser:
    """`httpapi.QueryParamParser`: every parse records the parameter name, so that
    `error_excess_params` can reject the rest; errors accumulate."""

    def __init__(self) -> None:
        self.errors: list[Validation] = []
        self.parsed: set[str] = set()

    def custom(
        self, values: Mapping[str, list[str]], default: T, name: str, parse: Callable[[str], T]
    ) -> T:
        self.parsed.add(name)
        found = values.get(name)
        if found is None:
            return default
        if len(found) > 1:
            self.errors.append(
                Validation(
                    name,
                    f'Query param "{name}" provided more than once, found {len(found)} times. '
                    "Only provide 1 instance of this query param.",
                )
            )
            return default
        try:
            return parse(found[0])
        except ValueError as error:
            self.errors.append(Validation(name, str(error)))
            return default

    def string(self, values: Mapping[str, list[str]], default: str, name: str) -> str:
        return self.custom(values, default, name, lambda v: v)

    def non_negative_int(self, values: Mapping[str, list[str]], default: int, name: str) -> int:
        def parse(text: str) -> int:
            if re.fullmatch(r"[+-]?\d+", text) is None or int(text) < 0 or int(text) > 2**31 - 1:
                raise ValueError(f'Query param "{name}" must be a valid 32-bit positive integer')
            return int(text)

        return self.custom(values, default, name, parse)

    def int64(self, values: Mapping[str, list[str]], default: int, name: str) -> int:
        def parse(text: str) -> int:
            if re.fullmatch(r"[+-]?\d+", text) is None:
                raise ValueError(f'Query param "{name}" must be a valid integer')
            return int(text)

        return self.custom(values, default, name, parse)

    def uuid_param(
        self, values: Mapping[str, list[str]], default: uuid.UUID | None, name: str
    ) -> uuid.UUID | None:
        def parse(text: str) -> uuid.UUID | None:
            if text == "":
                return default
            parsed = parse_go_uuid(text)
            if parsed is None:
                raise ValueError(f'Query param "{name}" must be a valid uuid')
            return parsed

        return self.custom(values, default, name, parse)

    def uuids(self, values: Mapping[str, list[str]], name: str) -> list[uuid.UUID]:
        def parse(text: str) -> list[uuid.UUID]:
            out: list[uuid.UUID] = []
            for part in text.split(","):
                if part.strip() == "":
                    continue
                parsed = parse_go_uuid(part.strip())
                if parsed is None:
                    raise ValueError(f'Query param "{name}" has invalid uuids: "{part}"')
                out.append(parsed)
            return out

        return self.custom(values, [], name, parse)

    def strings(self, values: Mapping[str, list[str]], name: str) -> list[str]:
        return self.custom(
            values, [], name, lambda text: [p.strip() for p in text.split(",") if p.strip()]
        )

    def enum_list(
        self, values: Mapping[str, list[str]], name: str, allowed: tuple[str, ...]
    ) -> list[str]:
        def parse(text: str) -> list[str]:
            out = [p.strip() for p in text.split(",") if p.strip()]
            for item in out:
                if item not in allowed:
                    raise ValueError(
                        f'Query param "{name}" has invalid values: "{item}" is not one of '
                        + ", ".join(allowed)
                    )
            return out

        return self.custom(values, [], name, parse)

    def boolean(self, values: Mapping[str, list[str]], default: bool, name: str) -> bool:
        result = self.nullable_boolean(values, name)
        return default if result is None else result

    def nullable_boolean(self, values: Mapping[str, list[str]], name: str) -> bool | None:
        def parse(text: str) -> bool | None:
            lowered = text.lower()
            if lowered in ("1", "t", "true"):
                return True
            if lowered in ("0", "f", "false"):
                return False
            raise ValueError(f'Query param "{name}" must be a valid boolean')

        return self.custom(values, None, name, parse)

    def time3339(self, values: Mapping[str, list[str]], name: str) -> datetime | None:
        def parse(text: str) -> datetime | None:
            try:
                parsed = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
            except ValueError as error:
                raise ValueError(
                    f'Query param "{name}" must be a valid date format (RFC3339): {error}'
                ) from error
            if parsed.tzinfo is None:
                raise ValueError(f'Query param "{name}" must be a valid date format (RFC3339)')
            return parsed

        return self.custom(values, None, name, parse)

    def required_not_empty(self, values: Mapping[str, list[str]], *names: str) -> None:
        for name in names:
            found = values.get(name)
            if not found or found[0] == "":
                self.errors.append(
                    Validation(name, f'Query param "{name}" is required and cannot be empty')
                )

    def error_excess_params(self, values: Mapping[str, list[str]]) -> None:
        for key in values:
            if key not in self.parsed:
                self.errors.append(Validation(key, f'"{key}" is not a valid query param'))


@dataclass(frozen=True)
class Pagination:
    after_id: uuid.UUID | None = None
    limit: int = 0
    offset: int = 0

    def apply(self, rows: list[T]) -> list[T]:
        rows = rows[self.offset :]
        return rows[: self.limit] if self.limit > 0 else rows


def parse_pagination(values: Mapping[str, list[str]]) -> Pagination:
    """`coderd.parsePagination`: after_id (UUID), limit and offset (non-negative; 0 = none)."""
    parser = QueryParser()
    pagination = Pagination(
        after_id=parser.uuid_param(values, None, "after_id"),
        limit=parser.non_negative_int(values, 0, "limit"),
        offset=parser.non_negative_int(values, 0, "offset"),
    )
    if parser.errors:
        raise invalid_query(parser.errors)
    return pagination


# --- the `q` search syntax --------------------------------------------------------------


def split_by_delimiter(query: str, delimiter: str, maintain_quotes: bool) -> list[str]:
    """`splitQueryParameterByDelimiter`: Go's `strings.FieldsFunc` with quoting."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in query:
        if char == '"':
            quoted = not quoted
        if not quoted and char == delimiter:
            if current:
                parts.append("".join(current))
                current = []
            continue
        current.append(char)
    if current:
        parts.append("".join(current))
    if not maintain_quotes:
        parts = [part.strip('"') for part in parts]
    return parts


def search_terms(query: str, default_key: str) -> QueryValues:
    """`searchquery.searchTerms`: tokens with a `:` are `key:value` pairs; all other tokens
    are joined with spaces into one bare term, stored under `default_key`."""
    tokens = split_by_delimiter(query, " ", True)
    bare = [token for token in tokens if ":" not in token]
    elements = [token for token in tokens if ":" in token]
    if bare:
        elements.append(" ".join(bare))
    values: QueryValues = {}
    for element in elements:
        if element.startswith(":") or element.endswith(":"):
            raise _search_error(f"Query element \"{element}\" cannot start or end with ':'")
        parts = split_by_delimiter(element, ":", False)
        if len(parts) == 1:
            values.setdefault(default_key, []).append(element)
        elif len(parts) == 2:
            values.setdefault(parts[0].lower(), []).append(parts[1])
        else:
            raise _search_error(f"Query element \"{element}\" can only contain 1 ':'")
    return values


class _SearchSyntaxError(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


def _search_error(detail: str) -> _SearchSyntaxError:
    return _SearchSyntaxError(detail)


def ilike_contains(haystack: str, needle: str) -> bool:
    """PostgreSQL `haystack ILIKE '%' || needle || '%'` (`%` and `_` are wildcards)."""
    pattern: list[str] = []
    escaped = False
    for char in needle:
        if escaped:
            pattern.append(re.escape(char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "%":
            pattern.append(".*")
        elif char == "_":
            pattern.append(".")
        else:
            pattern.append(re.escape(char))
    return re.search("".join(pattern), haystack, re.IGNORECASE | re.DOTALL) is not None


@dataclass
class UserFilter:
    search: str = ""
    name: str = ""
    status: list[str] = field(default_factory=list)
    service_account: bool | None = None
    roles: list[str] = field(default_factory=list)
    last_seen_after: datetime | None = None
    last_seen_before: datetime | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    github_com_user_id: int = 0
    login_type: list[str] = field(default_factory=list)


def parse_user_query(query: str) -> UserFilter:
    """`searchquery.Users` (contract §4.2): 400 `Invalid user search query.` on errors."""
    message = "Invalid user search query."
    try:
        values = search_terms(query.lower(), "search")
    except _SearchSyntaxError as error:
        raise ApiError(400, message, "", [Validation("q", error.detail)]) from error
    parser = QueryParser()
    result = UserFilter(
        search=parser.string(values, "", "search"),
        name=parser.string(values, "", "name"),
        status=parser.enum_list(values, "status", USER_STATUSES),
        service_account=parser.nullable_boolean(values, "service_account"),
        roles=parser.strings(values, "role"),
        last_seen_after=parser.time3339(values, "last_seen_after"),
        last_seen_before=parser.time3339(values, "last_seen_before"),
        created_after=parser.time3339(values, "created_after"),
        created_before=parser.time3339(values, "created_before"),
        github_com_user_id=parser.int64(values, 0, "github_com_user_id"),
        login_type=parser.enum_list(values, "login_type", LOGIN_TYPES),
    )
    parser.error_excess_params(values)
    if parser.errors:
        raise ApiError(400, message, "", parser.errors)
    return result


@dataclass
class TemplateFilter:
    deleted: bool = False
    organization: str = ""
    exact_name: str = ""
    exact_display_name: str = ""
    name: str = ""
    display_name: str = ""
    ids: list[uuid.UUID] = field(default_factory=list)
    deprecated: bool | None = None
    has_ai_task: bool | None = None
    author_id: uuid.UUID | None = None
    author: str = ""
    has_external_agent: bool | None = None


def parse_template_query(query: str) -> tuple[TemplateFilter, QueryParser]:
    """`searchquery.Templates` (contract §7): bare words match the display name. The caller
    resolves `organization` and reports `parser.errors`."""
    message = "Invalid template search query."
    try:
        values = search_terms(query.lower(), "display_name")
    except _SearchSyntaxError as error:
        raise ApiError(400, message, "", [Validation("q", error.detail)]) from error
    parser = QueryParser()
    result = TemplateFilter(
        deleted=parser.boolean(values, False, "deleted"),
        organization=parser.string(values, "", "organization"),
        exact_name=parser.string(values, "", "exact_name"),
        exact_display_name=parser.string(values, "", "exact_display_name"),
        name=parser.string(values, "", "name"),
        display_name=parser.string(values, "", "display_name"),
        ids=parser.uuids(values, "ids"),
        deprecated=parser.nullable_boolean(values, "deprecated"),
        has_ai_task=parser.nullable_boolean(values, "has-ai-task"),
        author_id=parser.uuid_param(values, None, "author_id"),
        author=parser.string(values, "", "author"),
        has_external_agent=parser.nullable_boolean(values, "has_external_agent"),
    )
    parser.error_excess_params(values)
    return result, parser
