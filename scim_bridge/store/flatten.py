"""Flatten a SCIM resource into the rows of ``attribute_index``.

Every attribute value becomes one row keyed by :func:`attribute_key`, holding the value in the
form SCIM comparisons use (case-folded strings unless caseExact, booleans as ``true``/``false``,
timestamps as fixed-width UTC ISO strings that sort chronologically). ``store/filters.py``
turns filters into queries over these rows with the same keys, so both sides agree by
construction.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel as PydanticModel
from scim2_models import CaseExact, Extension, Resource

# Attributes kept elsewhere: identity and meta have columns, members live in group_member,
# User.groups is computed, and password is never stored (Coder users log in through the IdP).
SKIPPED_FIELDS = {"id", "meta", "members", "groups", "password"}
SORT_PREFIX = "sort:"


@dataclass(frozen=True, slots=True)
class IndexedValue:
    path: str
    item: int
    kind: str
    text: str | None
    number: float | None


def attribute_key(extension: str, field_name: str, sub_field_name: str | None = None) -> str:
    """The ``path`` of an attribute: ``emails.value``, ``urn:…:2.0:user:manager.value``."""
    prefix = f"{extension.lower()}:" if extension else ""
    suffix = f".{sub_field_name}" if sub_field_name else ""
    return f"{prefix}{field_name}{suffix}"


def extension_of(model: type[Any]) -> str:
    """The schema URN that prefixes the attributes of ``model``; empty for the core schema."""
    if isinstance(model, type) and issubclass(model, Extension):
        return str(model.__schema__)
    return ""


def fold(value: str, case_exact: bool) -> str:
    """The comparison form of a string (scim2-models' default comparison key)."""
    normalized = unicodedata.normalize("NFC", value)
    return normalized if case_exact else unicodedata.normalize("NFC", normalized.lower())


def format_datetime(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def scalar(value: Any, case_exact: bool) -> tuple[str, str | None, float | None] | None:
    """(kind, text, number) of a simple value, or None for a value filters cannot compare."""
    if isinstance(value, bool):
        return "b", "true" if value else "false", None
    if isinstance(value, int | float):
        return "n", None, float(value)
    if isinstance(value, datetime):
        return "d", format_datetime(value), None
    if isinstance(value, str):
        return "s", fold(value, case_exact), None
    return None


def _is_case_exact(model: type[PydanticModel], field_name: str) -> bool:
    get = getattr(model, "get_field_annotation", None)
    return bool(get and get(field_name, CaseExact) == CaseExact.true)


def _simple_rows(path: str, item: int, value: Any, case_exact: bool) -> Iterator[IndexedValue]:
    found = scalar(value, case_exact)
    if found is not None:
        yield IndexedValue(path, item, *found)
    elif value is not None:
        # bytes (binary attributes): only their presence can be filtered on.
        yield IndexedValue(path, item, "x", None, None)


def _complex_rows(
    extension: str, field_name: str, item: int, value: PydanticModel
) -> Iterator[IndexedValue]:
    model = type(value)
    for sub_name in model.model_fields:
        sub_value = getattr(value, sub_name, None)
        if sub_value is None:
            continue
        yield from _simple_rows(
            attribute_key(extension, field_name, sub_name),
            item,
            sub_value,
            _is_case_exact(model, sub_name),
        )


def _sort_entry(entries: list[Any]) -> Any:
    """RFC 7644 §3.4.2.3: a multi-valued attribute sorts on its primary entry, else its first."""
    return next((e for e in entries if getattr(e, "primary", False) is True), entries[0])


def _field_rows(
    extension: str, model: type[PydanticModel], field_name: str, value: Any
) -> Iterator[IndexedValue]:
    key = attribute_key(extension, field_name)
    case_exact = _is_case_exact(model, field_name)
    if isinstance(value, list):
        entries = [entry for entry in value if entry is not None]
        for item, entry in enumerate(entries):
            if isinstance(entry, PydanticModel):
                yield IndexedValue(key, item, "e", None, None)
                yield from _complex_rows(extension, field_name, item, entry)
            else:
                yield from _simple_rows(key, item, entry, case_exact)
        if entries:
            first = _sort_entry(entries)
            if isinstance(first, PydanticModel):
                for row in _complex_rows(extension, field_name, 0, first):
                    yield IndexedValue(SORT_PREFIX + row.path, 0, row.kind, row.text, row.number)
            else:
                for row in _simple_rows(key, 0, first, case_exact):
                    yield IndexedValue(SORT_PREFIX + key, 0, row.kind, row.text, row.number)
    elif isinstance(value, PydanticModel):
        yield from _complex_rows(extension, field_name, 0, value)
    else:
        yield from _simple_rows(key, 0, value, case_exact)


def flatten(resource: Resource[Any]) -> list[IndexedValue]:
    """Every filterable value of a resource (meta timestamps included)."""
    rows: list[IndexedValue] = []
    for owner in [resource, *_extensions(resource)]:
        model = type(owner)
        extension = extension_of(model)
        for field_name in model.model_fields:
            if field_name in SKIPPED_FIELDS and not extension:
                continue
            value = getattr(owner, field_name, None)
            if value is None or isinstance(value, Extension):
                continue
            rows.extend(_field_rows(extension, model, field_name, value))
    meta = resource.meta
    if meta is not None:
        for name in ("created", "last_modified", "resource_type", "version"):
            value = getattr(meta, name, None)
            if value is not None:
                rows.extend(_simple_rows(f"meta.{name}", 0, value, name == "version"))
    return rows


def _extensions(resource: Resource[Any]) -> list[Extension]:
    return [
        value
        for name in type(resource).model_fields
        if isinstance(value := getattr(resource, name, None), Extension)
    ]
