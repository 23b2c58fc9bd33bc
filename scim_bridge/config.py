"""Settings: a YAML file plus ``SCIM_BRIDGE_*`` environment variables, validated at start-up.

Precedence, highest first: environment variables, the configuration file, the defaults.
A bad value raises :class:`ConfigError`, whose message names the key, the value and the fix.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from .hierarchy.spec import GroupRef, group_ref

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


class HierarchySettings(BaseModel):
    """Where the group tree comes from besides SCIM nesting (docs/inheritance.md)."""

    model_config = ConfigDict(extra="forbid")

    file: str | None = Field(
        default=None, description="YAML hierarchy file (see config/hierarchy.example.yaml)"
    )
    naming_delimiter: str | None = Field(
        default=None,
        description='naming rule: with "/", a group named Engineering/Java is a child of '
        "Engineering; unset (the default) turns the rule off",
    )

    @field_validator("naming_delimiter")
    @classmethod
    def _delimiter(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or len(value) > 16):
            raise ValueError('must be 1 to 16 visible characters, e.g. "/", or unset')
        return value


TreeGroup = Annotated[GroupRef, BeforeValidator(group_ref)]


class DepartmentGrant(BaseModel):
    """One more group of the tree that gets a role on the department's templates."""

    model_config = ConfigDict(extra="forbid")

    group: TreeGroup
    role: Literal["admin", "use"] = "use"


class DepartmentSettings(BaseModel):
    """A department: a group of the tree that owns Coder templates (docs/template-isolation.md)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="what reports call it, e.g. java")
    group: TreeGroup = Field(description="the department's group in the tree")
    templates: list[str] = Field(
        description="the Coder templates it owns: names or shell-style patterns (java-*), "
        "matched case-insensitively",
    )
    admin_group: TreeGroup = Field(description="its template admins: `admin` on its templates")
    user_group: TreeGroup | None = Field(
        default=None,
        description="who may use its templates (`use`); default: the department group, "
        "whose effective members include its subgroups",
    )
    ancestors_use: bool = Field(
        default=False, description="the department group's ancestors get `use` too"
    )
    isolated: bool = Field(default=False, description="remove Everyone from its templates' ACLs")
    strict: bool | None = Field(
        default=None,
        description="remove ACL entries of groups and users the bridge does not manage "
        "(default: template_isolation.strict)",
    )
    grants: list[DepartmentGrant] = Field(default_factory=list)

    @field_validator("templates")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one template name or pattern, e.g. [java-*]")
        blank = [pattern for pattern in value if not pattern.strip()]
        if blank:
            raise ValueError("template names and patterns must not be empty, e.g. java-*")
        return value


class TemplateIsolationSettings(BaseModel):
    """Departments and the template ACLs the bridge keeps for them (contract §7)."""

    model_config = ConfigDict(extra="forbid")

    strict: bool = Field(
        default=False,
        description="remove ACL entries of groups and users the bridge does not manage; "
        "false reports them as drift and keeps them",
    )
    departments: list[DepartmentSettings] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_owner(self) -> TemplateIsolationSettings:
        problems = []
        names: set[str] = set()
        patterns: dict[str, str] = {}
        for department in self.departments:
            key = department.name.lower()
            if key in names:
                problems.append(f"two departments are named {department.name!r}")
            names.add(key)
            for pattern in department.templates:
                owner = patterns.setdefault(pattern.lower(), department.name)
                if owner != department.name:
                    problems.append(
                        f"template {pattern!r} is claimed by departments {owner} and "
                        f"{department.name}; a template belongs to one department"
                    )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class CoderSettings(BaseModel):
    """Where and how the tree is written into Coder (docs/coder.md). No ``url``: no sync."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, description="Coder's URL, e.g. https://coder.example.com")
    token: str | None = Field(
        default=None, description="a Coder API token (prefer SCIM_BRIDGE_CODER__TOKEN)"
    )
    organization: str = "default"
    mode: Literal["api", "mapping"] = "api"
    mapping_claim: Literal["displayName", "externalId"] = Field(
        default="displayName",
        description="mapping mode: the group attribute the IdP puts in the groups claim; "
        "displayName (Okta) or externalId (Entra sends group object ids)",
    )
    group_sync_field: str = Field(
        default="groups",
        description="the claim Coder reads the groups from (export-mapping writes it as the "
        "group-sync field)",
    )
    group_prefix: str = ""
    match_users_by: Literal["email", "username"] = "email"
    create_missing_users: bool = False
    suspend_deactivated_users: bool = False
    adopt_groups: list[str] = Field(default_factory=list)
    rate_limit_per_minute: int = Field(default=512, ge=0)
    http_timeout_seconds: float = Field(
        default=300.0,
        gt=0,
        description="how long one Coder call may wait for an answer; a full resync reads "
        "every group with its members in one call, which takes minutes at 100k users",
    )
    debounce_seconds: float = Field(default=1.0, ge=0)
    resync_interval_seconds: int = Field(default=3600, ge=0)
    lease_seconds: int = Field(default=60, ge=5)
    failsafe_max_removal_share: float = Field(default=0.5, gt=0, le=1)
    failsafe_min_group_size: int = Field(default=10, ge=1)
    failsafe_max_removals: int = Field(default=200, ge=1)
    template_acl_interval_seconds: int = Field(
        default=300,
        ge=0,
        description="how often the departments' template ACLs are checked between resyncs "
        "(new templates, edits by department admins); 0 = with resyncs only",
    )
    template_isolation: TemplateIsolationSettings = Field(default_factory=TemplateIsolationSettings)

    @field_validator("url")
    @classmethod
    def _coder_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be Coder's http(s) URL, e.g. https://coder.example.com")
        return value.rstrip("/") if value else value

    @field_validator("mapping_claim", mode="before")
    @classmethod
    def _mapping_claim(cls, value: Any) -> Any:
        known = {"displayname": "displayName", "externalid": "externalId"}
        if isinstance(value, str) and value.replace("_", "").lower() in known:
            return known[value.replace("_", "").lower()]
        raise ValueError(
            "must be displayName (the IdP sends group names in the token, e.g. Okta) or "
            "externalId (it sends group ids, e.g. Entra object ids)"
        )

    @field_validator("group_sync_field")
    @classmethod
    def _group_sync_field(cls, value: str) -> str:
        if not value.strip() or value != value.strip():
            raise ValueError(
                "must name the token claim that carries the groups, e.g. groups; an empty "
                "field turns Coder's group sync off"
            )
        return value

    def model_post_init(self, _: Any) -> None:
        if self.url and not self.token:
            raise ValueError(
                "coder.url is set but coder.token is not: set SCIM_BRIDGE_CODER__TOKEN "
                "to a token of a Coder user with the user-admin role, and template-admin "
                "too when departments are configured (docs/coder.md)"
            )


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
    hierarchy: HierarchySettings = Field(default_factory=HierarchySettings)
    coder: CoderSettings = Field(default_factory=CoderSettings)
    log_level: str = "info"
    log_format: Literal["json", "text"] = Field(
        default="text",
        description="text (readable, for a terminal) or json (one object per line: time, "
        "level, logger, message), for `serve`",
    )

    @field_validator("hierarchy", "coder", mode="before")
    @classmethod
    def _empty_section(cls, value: Any) -> Any:
        # A YAML section whose keys are all commented out reads as null.
        return {} if value is None else value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql", "postgres://")):
            raise ValueError(
                "only SQLite (sqlite:///file.db) and PostgreSQL "
                "(postgresql://user@host:5432/db) are supported"
            )
        if value.startswith("sqlite") and (
            value.rstrip("/").endswith(":memory:")
            or value
            in (
                "sqlite://",
                "sqlite:///",
            )
        ):
            raise ValueError(
                "an in-memory SQLite database would be empty on every connection and lost at "
                "every restart (changes acknowledged to the IdP would never reach Coder): name "
                "a file, e.g. sqlite:///scim-bridge.db"
            )
        return value

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        levels = {"debug", "info", "warning", "error"}
        if value.lower() not in levels:
            raise ValueError(f"must be one of {', '.join(sorted(levels))}")
        return value.lower()

    @field_validator("log_format", mode="before")
    @classmethod
    def _known_format(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ("json", "text"):
            return value.lower()
        raise ValueError("must be text (for a terminal) or json (one JSON object per line)")


Sources = dict[tuple[str, ...], str]


def _env_overrides(environ: dict[str, str]) -> tuple[dict[str, Any], Sources, Sources]:
    """Turn ``SCIM_BRIDGE_JWT__ISSUER=x`` into ``{"jwt": {"issuer": "x"}}``.

    Also return where each key came from, and each section the environment opened.
    """
    result: dict[str, Any] = {}
    sources: Sources = {}
    sections: Sources = {}
    for name in sorted(environ):  # SCIM_BRIDGE_JWT sorts before SCIM_BRIDGE_JWT__ISSUER
        if not name.startswith(ENV_PREFIX) or name == CONFIG_FILE_ENV:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        target = result
        for depth, key in enumerate(keys[:-1]):
            section_path = tuple(keys[: depth + 1])
            section_env = ENV_PREFIX + "__".join(section_path).upper()
            section = target.setdefault(key, {})
            if not isinstance(section, dict):
                raise ConfigError(
                    f"environment variables {section_env} and {name} conflict: "
                    f"{'.'.join(section_path)} cannot be both a value and a section; "
                    "unset one of them"
                )
            sections.setdefault(section_path, f"the environment ({section_env}__*)")
            target = section
        target[keys[-1]] = environ[name]
        sources[tuple(keys)] = f"environment variable {name}"
    return result, sources, sections


def _file_sources(values: dict[str, Any], origin: str, prefix: tuple[str, ...] = ()) -> Sources:
    sources: Sources = {}
    for key, value in values.items():
        path = (*prefix, str(key))
        sources[path] = origin
        if isinstance(value, dict):
            sources.update(_file_sources(value, origin, path))
    return sources


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _section_model(path: tuple[str, ...]) -> type[BaseModel] | None:
    """The settings model of the section at ``path`` (``()`` is the top level)."""
    model: type[BaseModel] = Settings
    for key in path:
        if key.isdigit():  # an item of a list section: the item's model is already in hand
            continue
        field = model.model_fields.get(key)
        if field is None:
            return None
        nested = _model_in(field.annotation)
        if nested is None:
            return None
        model = nested
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The settings model inside a type: ``X``, ``X | None``, ``list[X]``, ``Annotated[X, …]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _where(path: tuple[str, ...], sources: Sources) -> str:
    """Where the most specific known part of ``path`` was set."""
    for end in range(len(path), 0, -1):
        if path[:end] in sources:
            return sources[path[:end]]
    return "the configuration"


def _shown(path: tuple[str, ...], value: Any) -> str:
    """The value as the message shows it: a database URL without its password."""
    if path == ("database_url",) and isinstance(value, str):
        value = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", value)
    return repr(value)


def _describe(error: Any, sources: Sources) -> str:
    path = tuple(str(part) for part in error["loc"])
    key = ".".join(path)
    env_name = ENV_PREFIX + "__".join(path).upper()
    if error["type"] == "extra_forbidden":
        section = _section_model(path[:-1])
        fields = section.model_fields.items() if section else ()
        known = ", ".join(info.alias or name for name, info in fields) or "(none)"
        where = sources.get(path, _where(path, sources))
        return f"{key}: unknown key in {where}; remove it or use one of: {known}"
    if error["type"] == "missing":
        where = _where(path[:-1], sources) if len(path) > 1 else "the configuration"
        return f"{key}: required in {where}; set it (or {env_name})"
    fix = error["msg"].removeprefix("Value error, ")
    if isinstance(error.get("input"), dict | list):  # a whole section: its value says nothing
        return f"{key} (from {_where(path, sources)}) is invalid: {fix}"
    value = _shown(path, error.get("input"))
    return f"{key}={value} (from {_where(path, sources)}) is invalid: {fix}"


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
            named_by = "--config" if config_file else CONFIG_FILE_ENV
            other = "pass another --config" if config_file else f"unset {CONFIG_FILE_ENV}"
            raise ConfigError(
                f"configuration file {file_path} (named by {named_by}) does not exist; "
                f"create it (see config/scim-bridge.example.yaml) or {other}"
            )
        try:
            loaded = yaml.safe_load(file_path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ConfigError(f"{file_path} is not valid YAML: {error}") from error
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file_path} must hold a mapping of keys to values")
        file_values = loaded
    env_values, env_sources, env_sections = _env_overrides(environ)
    sources = {**env_sections, **_file_sources(file_values, str(path)), **env_sources}
    try:
        return Settings.model_validate(_merge(file_values, env_values))
    except ValidationError as error:
        problems = [_describe(e, sources) for e in error.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from error
