"""Coder's validation rules (contract §6) and Go's parsing of UUIDs and regular expressions."""

from __future__ import annotations

import re
import uuid

from .errors import Validation

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$")
DISPLAY_NAME_PATTERN = re.compile(r"^[^\s](.*[^\s])?$", re.DOTALL)
RESERVED_NAMES = frozenset({"new", "create"})
EVERYONE = "Everyone"
_HEX = frozenset("0123456789abcdefABCDEF")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def parse_go_uuid(text: str) -> uuid.UUID | None:
    """`uuid.Parse` from github.com/google/uuid: 36 chars with dashes, `{...}`, `urn:uuid:...`,
    or 32 hex digits. Anything else is not a UUID."""
    value = text
    if len(value) == 32:
        return uuid.UUID(hex=value) if all(c in _HEX for c in value) else None
    if len(value) == 38:
        if value[0] != "{" or value[-1] != "}":
            return None
        value = value[1:-1]
    elif len(value) == 45:
        if value[:9].lower() != "urn:uuid:":
            return None
        value = value[9:]
    elif len(value) != 36:
        return None
    if any(value[i] != "-" for i in (8, 13, 18, 23)):
        return None
    digits = value.replace("-", "")
    if len(digits) != 32 or not all(c in _HEX for c in digits):
        return None
    return uuid.UUID(hex=digits)


def go_uuid_error(text: str) -> str:
    """The error text of `uuid.Parse` for an invalid value."""
    if len(text) not in (32, 36, 38, 45):
        return f"invalid UUID length: {len(text)}"
    if len(text) == 45 and text[:9].lower() != "urn:uuid:":
        return "invalid urn prefix: " + text[:9]
    return "invalid UUID format"


def tag_failure(field: str, tag: str, value: object) -> Validation:
    """How `httpapi.Read` words a failed validator tag."""
    return Validation(field, f'Validation failed for tag "{tag}" with value: "{value}"')


def name_valid(name: str, max_length: int = 32) -> bool:
    """`codersdk.NameValid` (usernames, organization and template names): 1-32 chars."""
    return (
        0 < len(name) <= max_length
        and NAME_PATTERN.fullmatch(name) is not None
        and name not in RESERVED_NAMES
    )


def group_name_valid(name: str) -> bool:
    """`codersdk.GroupNameValid`: like a name but up to 255 chars (PR #15377)."""
    return name_valid(name, max_length=255)


def display_name_valid(name: str) -> bool:
    """`codersdk.DisplayNameValid`: may be empty, ≤64 chars, no surrounding whitespace."""
    if name == "":
        return True
    return len(name) <= 64 and DISPLAY_NAME_PATTERN.fullmatch(name) is not None


def user_real_name_valid(name: str) -> bool:
    """`codersdk.UserRealNameValid`: ≤128 chars, no surrounding whitespace."""
    if name == "":
        return True
    return len(name) <= 128 and name.strip() == name


def email_valid(email: str) -> bool:
    return _EMAIL.fullmatch(email) is not None


# Constructs Python's `re` accepts but Go's RE2 does not: lookaround, backreferences,
# conditionals, possessive quantifiers and `\Z` (RE2 spells the end of text `\z`).
_NOT_RE2 = re.compile(r"\(\?<?[=!]|(?<!\\)\\[1-9]|\(\?P=|\(\?\(|[*+?}]\+|(?<!\\)\\Z")


def compile_go_regex(pattern: str) -> re.Pattern[str]:
    """Compile a regular expression the way Go's `regexp.Compile` would accept it (RE2).
    Raises ValueError with Go-like wording."""
    if _NOT_RE2.search(pattern):
        raise ValueError(f"error parsing regexp: invalid or unsupported Perl syntax: `{pattern}`")
    try:
        return re.compile(re.sub(r"(?<!\\)\\z", r"\\Z", pattern))
    except re.error as error:
        raise ValueError(f"error parsing regexp: {error}: `{pattern}`") from error
