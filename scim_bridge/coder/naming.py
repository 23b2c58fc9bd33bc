"""Coder names for SCIM groups (contract §6): slugs, unique in the organization.

Coder group names must match ``^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$``, have at most 255
characters and not be ``new`` or ``create``; the human name goes in ``display_name`` (at most
64 characters, no surrounding whitespace).
"""

from __future__ import annotations

import re
import unicodedata

NAME_LIMIT = 255
DISPLAY_LIMIT = 64
RESERVED = {"new", "create", "everyone"}
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def slug(display_name: str, prefix: str = "") -> str:
    """``Engineering/Java`` → ``engineering-java`` (with the configured prefix first)."""
    ascii_text = unicodedata.normalize("NFKD", f"{prefix}{display_name}").encode("ascii", "ignore")
    text = _NOT_ALNUM.sub("-", ascii_text.decode().lower()).strip("-") or "group"
    if text in RESERVED:
        text = f"{text}-group"
    return text[:NAME_LIMIT].rstrip("-")


def with_suffix(name: str, number: int) -> str:
    """The ``number``-th alternative of a taken name: ``java-2``, ``java-3``…"""
    suffix = f"-{number}"
    return name[: NAME_LIMIT - len(suffix)].rstrip("-") + suffix


def display_name(name: str) -> str:
    return " ".join(name.split())[:DISPLAY_LIMIT].strip()
