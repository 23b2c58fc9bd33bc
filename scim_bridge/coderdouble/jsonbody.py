"""Request bodies decoded the way Go's `encoding/json` decodes them into Coder's structs.

What matters for a faithful double:
- keys match struct fields exactly or, failing that, case-insensitively (so `Add`/`add`,
  `Given`/`given` both work, contract §5.1, and so does `NAME` for `name`);
- unknown keys are ignored; `null` leaves a field at its zero value / nil pointer;
- a value of the wrong type, an invalid UUID or regular expression fails the whole body
  (`httpapi.Read` answers 400 `Request body must be valid JSON.`);
- only the first JSON value is read: trailing bytes are ignored; an empty body is `EOF`.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import INVALID_JSON, ApiError
from .validation import compile_go_regex, go_uuid_error, parse_go_uuid


class JsonTypeError(Exception):
    """A value that Go could not unmarshal into the target type."""


Parser = Callable[[Any, str], Any]


@dataclass(frozen=True)
class Spec:
    """A Go struct: its name (for error text) and a parser per JSON field name."""

    struct: str
    fields: dict[str, Parser]


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return f"number {json.dumps(value)}" if isinstance(value, float) else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _mismatch(value: Any, where: str, go_type: str) -> JsonTypeError:
    return JsonTypeError(
        f"json: cannot unmarshal {_kind(value)} into Go struct field {where} of type {go_type}"
    )


def string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _mismatch(value, where, "string")
    return value


def integer(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _mismatch(value, where, "int")
    return value


def boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise _mismatch(value, where, "bool")
    return value


def uuid_value(value: Any, where: str) -> uuid.UUID:
    if not isinstance(value, str):
        raise _mismatch(value, where, "uuid.UUID")
    parsed = parse_go_uuid(value)
    if parsed is None:
        raise JsonTypeError(go_uuid_error(value))
    return parsed


def regex(value: Any, where: str) -> str:
    """A `*regexp.Regexp` field: the pattern must compile (Go RE2)."""
    if not isinstance(value, str):
        raise _mismatch(value, where, "regexp.Regexp")
    try:
        compile_go_regex(value)
    except ValueError as error:
        raise JsonTypeError(str(error)) from error
    return value


def list_of(item: Parser, go_type: str) -> Parser:
    def parse(value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise _mismatch(value, where, f"[]{go_type}")
        return [None if element is None else item(element, where) for element in value]

    return parse


def string_list(value: Any, where: str) -> list[str]:
    """`[]string`: a `null` element becomes `""` as in Go."""
    items: list[str | None] = list_of(string, "string")(value, where)
    return ["" if item is None else item for item in items]


def uuid_list(value: Any, where: str) -> list[uuid.UUID]:
    items: list[uuid.UUID | None] = list_of(uuid_value, "uuid.UUID")(value, where)
    return [uuid.UUID(int=0) if item is None else item for item in items]


def map_of(item: Parser, go_type: str, *, keep_null: bool = False) -> Parser:
    def parse(value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _mismatch(value, where, f"map[string]{go_type}")
        out: dict[str, Any] = {}
        for key, element in value.items():
            if element is None:
                if keep_null:
                    out[key] = None
                elif go_type == "string":
                    out[key] = ""
                continue
            out[key] = item(element, where)
        return out

    return parse


def nested(spec: Spec) -> Parser:
    def parse(value: Any, where: str) -> dict[str, Any]:
        return decode_object(value, spec)

    return parse


def decode_object(value: Any, spec: Spec) -> dict[str, Any]:
    """Decode one JSON value into the fields of `spec`: the fields present with a non-null
    value, parsed. Go's matching: exact key first, else case-insensitive."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise JsonTypeError(
            f"json: cannot unmarshal {_kind(value)} into Go value of type codersdk.{spec.struct}"
        )
    folded = {name.lower(): name for name in spec.fields}
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = key if key in spec.fields else folded.get(key.lower())
        if name is None:
            continue
        if item is None:
            out.pop(name, None)
            continue
        out[name] = spec.fields[name](item, f"{spec.struct}.{name}")
    return out


_LEADING_SPACE = re.compile(r"[ \t\r\n]*")


def read_body(raw: bytes, spec: Spec) -> dict[str, Any]:
    """`httpapi.Read`'s JSON step: 400 `Request body must be valid JSON.` on any failure."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ApiError(400, INVALID_JSON, str(error)) from error
    start = _LEADING_SPACE.match(text)
    offset = start.end() if start else 0
    if offset >= len(text):
        raise ApiError(400, INVALID_JSON, "EOF")
    try:
        value, _ = json.JSONDecoder().raw_decode(text, offset)
    except json.JSONDecodeError as error:
        raise ApiError(400, INVALID_JSON, str(error)) from error
    try:
        return decode_object(value, spec)
    except JsonTypeError as error:
        raise ApiError(400, INVALID_JSON, str(error)) from error
