"""Settings: a YAML file plus ``SCIM_BRIDGE_*`` environment variables, validated at start-up.

Precedence, highest first: environment variables, the configuration file, the defaults.
A bad value raises :class:`ConfigError`, whose message names the key, the value and the fix.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "SCIM_BRIDGE_"
CONFIG_FILE_ENV = "SCIM_BRIDGE_CONFIG"
DEFAULT_DATABASE_URL = "sqlite:///scim-bridge.db"


class ConfigError(Exception):
    """A configuration value is wrong; the message says which, and how to fix it."""


class JwtSettings(BaseModel):
    """OAuth 2.0 bearer JWTs (Entra gallery apps use client credentials)."""

    model_config = ConfigDict(extra="forbid")

    jwks_url: str = Field(description="URL of the issuer's JSON Web Key Set")
    issuer: str = Field(description="expected `iss` claim")
    audience: str = Field(description="expected `aud` claim")
    leeway_seconds: int = Field(default=60, ge=0, le=600)

    @field_validator("jwks_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL such as https://login.example/keys")
        return value


class Settings(BaseModel):
    """Everything scim-bridge reads from its configuration."""

    model_config = ConfigDict(extra="forbid")

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="sqlite:///path.db or postgresql://user@host:5432/db",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = Field(
        default=None,
        description="URL clients reach the bridge at, when behind a proxy "
        "(e.g. https://scim.example.com); by default taken from each request",
    )
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_page_size: int = Field(default=1000, ge=1, le=10_000)
    default_page_size: int = Field(default=100, ge=1)
    jwt: JwtSettings | None = None
    log_level: str = "info"

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError(
                "only SQLite (sqlite:///file.db) and PostgreSQL "
                "(postgresql://user@host:5432/db) are supported"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        levels = {"debug", "info", "warning", "error"}
        if value.lower() not in levels:
            raise ValueError(f"must be one of {', '.join(sorted(levels))}")
        return value.lower()


def _env_overrides(environ: dict[str, str]) -> dict[str, Any]:
    """Turn ``SCIM_BRIDGE_JWT__ISSUER=x`` into ``{"jwt": {"issuer": "x"}}``."""
    result: dict[str, Any] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_FILE_ENV:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        target = result
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return result


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: Any, sources: dict[str, str]) -> str:
    key = ".".join(str(part) for part in error["loc"])
    top = str(error["loc"][0]) if error["loc"] else ""
    env_name = ENV_PREFIX + "__".join(str(p) for p in error["loc"]).upper()
    where = sources.get(top, "the configuration")
    if error["type"] == "extra_forbidden":
        known = ", ".join(Settings.model_fields)
        return f"{key}: unknown key in {where}; remove it or use one of: {known}"
    if error["type"] == "missing":
        return f"{key}: required in {where}; set it (or {env_name})"
    value = error.get("input")
    fix = error["msg"].removeprefix("Value error, ")
    return f"{key}={value!r} (from {where}) is invalid: {fix}"


def load_settings(
    config_file: str | os.PathLike[str] | None = None,
    environ: dict[str, str] | None = None,
) -> Settings:
    """Read and validate the settings; raise :class:`ConfigError` naming every bad key."""
    environ = dict(os.environ if environ is None else environ)
    path = config_file or environ.get(CONFIG_FILE_ENV)
    file_values: dict[str, Any] = {}
    if path:
        file_path = Path(path)
        if not file_path.is_file():
            raise ConfigError(
                f"configuration file {file_path} does not exist; "
                f"create it (see config/scim-bridge.example.yaml) or unset {CONFIG_FILE_ENV}"
            )
        try:
            loaded = yaml.safe_load(file_path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{file_path} is not valid YAML: {error}") from error
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file_path} must hold a mapping of keys to values")
        file_values = loaded
    env_values = _env_overrides(environ)
    sources = {key: str(path) for key in file_values}
    sources.update({key: f"environment variable {ENV_PREFIX}{key.upper()}" for key in env_values})
    try:
        return Settings.model_validate(_merge(file_values, env_values))
    except ValidationError as error:
        problems = [_describe(e, sources) for e in error.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from error
