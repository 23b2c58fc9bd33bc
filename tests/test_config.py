"""Configuration: a YAML file plus SCIM_BRIDGE_* environment variables (the environment wins), and
errors that name the key, the bad value and the fix.

These tests read settings only; none touches a database, so none is parametrised over them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scim_bridge import cli
from scim_bridge.config import (
    CONFIG_FILE_ENV,
    DEFAULT_DATABASE_URL,
    ConfigError,
    JwtSettings,
    Settings,
    load_settings,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "config" / "scim-bridge.example.yaml"

JWT_YAML = """\
jwt:
  jwks_url: https://login.example.test/keys
  issuer: https://login.example.test/
  audience: api://scim-bridge
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    return tmp_path / "scim-bridge.yaml"


def error_of(config: Path | None, environ: dict[str, str], text: str | None = None) -> str:
    if config is not None and text is not None:
        config.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(config, environ)
    return str(raised.value)


# -- sources and precedence ------------------------------------------------------------------------


def test_defaults_without_file_or_environment() -> None:
    settings = load_settings(None, {})
    assert settings == Settings()
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.jwt is None


def test_file_values_are_read(config_file: Path) -> None:
    config_file.write_text(
        "database_url: postgresql://bridge@127.0.0.1:5432/bridge\n"
        "port: 9000\n"
        "max_page_size: 50\n"
        "log_level: WARNING\n"
        "public_url: https://scim.example.test\n" + JWT_YAML
    )
    settings = load_settings(config_file, {})
    assert settings.database_url == "postgresql://bridge@127.0.0.1:5432/bridge"
    assert settings.port == 9000
    assert settings.max_page_size == 50
    assert settings.log_level == "warning"
    assert settings.public_url == "https://scim.example.test"
    assert settings.jwt == JwtSettings(
        jwks_url="https://login.example.test/keys",
        issuer="https://login.example.test/",
        audience="api://scim-bridge",
    )


def test_environment_wins_over_file(config_file: Path) -> None:
    config_file.write_text("port: 9000\nhost: 0.0.0.0\nmax_body_bytes: 4096\n" + JWT_YAML)
    environ = {
        "SCIM_BRIDGE_PORT": "9100",
        "SCIM_BRIDGE_DATABASE_URL": "sqlite:///from-env.db",
        "SCIM_BRIDGE_JWT__AUDIENCE": "api://from-env",
        "SCIM_BRIDGE_JWT__LEEWAY_SECONDS": "5",
        "UNRELATED": "ignored",
    }
    settings = load_settings(config_file, environ)
    assert settings.port == 9100  # environment over file
    assert settings.database_url == "sqlite:///from-env.db"  # environment over default
    assert settings.host == "0.0.0.0"  # file, untouched by the environment
    assert settings.max_body_bytes == 4096
    assert settings.jwt is not None
    assert settings.jwt.audience == "api://from-env"  # one nested key overridden ...
    assert settings.jwt.leeway_seconds == 5
    assert settings.jwt.issuer == "https://login.example.test/"  # ... the others kept


def test_nested_section_from_environment_alone() -> None:
    settings = load_settings(
        None,
        {
            "SCIM_BRIDGE_JWT__JWKS_URL": "https://login.example.test/keys",
            "SCIM_BRIDGE_JWT__ISSUER": "https://login.example.test/",
            "SCIM_BRIDGE_JWT__AUDIENCE": "api://scim-bridge",
        },
    )
    assert settings.jwt is not None and settings.jwt.jwks_url == "https://login.example.test/keys"


def test_config_file_named_by_environment(config_file: Path) -> None:
    config_file.write_text("port: 9200\n")
    settings = load_settings(None, {CONFIG_FILE_ENV: str(config_file), "SCIM_BRIDGE_HOST": "::1"})
    assert (settings.port, settings.host) == (9200, "::1")


def test_explicit_file_wins_over_the_file_named_by_environment(
    config_file: Path, tmp_path: Path
) -> None:
    config_file.write_text("port: 9300\n")
    other = tmp_path / "other.yaml"
    other.write_text("port: 9400\n")
    assert load_settings(config_file, {CONFIG_FILE_ENV: str(other)}).port == 9300


def test_empty_file_gives_defaults(config_file: Path) -> None:
    config_file.write_text("# nothing set\n")
    assert load_settings(config_file, {}) == Settings()


def test_example_configuration_is_valid() -> None:
    """The example the error messages point to loads, and documents every setting."""
    settings = load_settings(EXAMPLE, {})
    assert settings.port == 8000
    text = EXAMPLE.read_text()
    for key in Settings.model_fields:
        assert key in text, f"{key} is not documented in {EXAMPLE.name}"


# -- errors that name the key, the value and the fix -----------------------------------------------


def test_unknown_key_is_named_with_the_known_ones(config_file: Path) -> None:
    message = error_of(config_file, {}, "prot: 8080\n")
    assert "prot: unknown key in" in message
    assert str(config_file) in message
    assert "remove it or use one of:" in message
    assert "port" in message and "database_url" in message


def test_unknown_environment_key_names_the_variable() -> None:
    message = error_of(None, {"SCIM_BRIDGE_PROT": "8080"})
    assert "prot: unknown key in environment variable SCIM_BRIDGE_PROT" in message
    assert "port" in message


def test_unknown_nested_key_lists_the_section_keys(config_file: Path) -> None:
    message = error_of(config_file, {}, JWT_YAML + "  colour: red\n")
    assert "jwt.colour: unknown key in" in message
    known = message.split("use one of:")[1]
    assert "jwks_url" in known and "leeway_seconds" in known
    assert "database_url" not in known, "the keys of the jwt section, not the top level"


@pytest.mark.parametrize(
    ("port", "fix"),
    [
        ("abc", "valid integer"),
        ("0", "greater than or equal to 1"),
        ("70000", "less than or equal to 65535"),
        ("-1", "greater than or equal to 1"),
    ],
)
def test_bad_port_is_named_with_its_value_and_fix(config_file: Path, port: str, fix: str) -> None:
    message = error_of(config_file, {}, f"port: {port}\n")
    assert f"port={port!r}" in message or f"port={int(port)!r}" in message, message
    assert f"(from {config_file})" in message
    assert fix in message
    from_env = error_of(None, {"SCIM_BRIDGE_PORT": port})
    assert f"port={port!r} (from environment variable SCIM_BRIDGE_PORT)" in from_env
    assert fix in from_env


def test_bad_environment_value_wins_over_a_good_file_value(config_file: Path) -> None:
    """The environment wins for errors too: the message blames the variable, not the file."""
    message = error_of(config_file, {"SCIM_BRIDGE_PORT": "eighty"}, "port: 8080\n")
    assert "port='eighty' (from environment variable SCIM_BRIDGE_PORT)" in message
    assert str(config_file) not in message


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root@127.0.0.1/bridge",
        "mongodb://127.0.0.1/bridge",
        "scim-bridge.db",
        "",
    ],
)
def test_unsupported_database_url_is_named_with_the_supported_ones(
    config_file: Path, url: str
) -> None:
    message = error_of(config_file, {}, f"database_url: '{url}'\n")
    assert f"database_url={url!r}" in message
    assert "only SQLite (sqlite:///file.db) and PostgreSQL" in message
    assert "postgresql://user@host:5432/db" in message


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite://", "sqlite+aiosqlite:///:memory:"])
def test_in_memory_sqlite_is_refused_with_the_reason(url: str) -> None:
    message = error_of(None, {"SCIM_BRIDGE_DATABASE_URL": url})
    assert "in-memory SQLite database would be empty on every connection" in message
    assert "sqlite:///scim-bridge.db" in message


def test_database_url_password_is_not_shown_in_errors() -> None:
    message = error_of(None, {"SCIM_BRIDGE_DATABASE_URL": "mysql://root:hunter2@127.0.0.1/db"})
    assert "hunter2" not in message
    assert "database_url='mysql://root:***@127.0.0.1/db'" in message


def test_missing_config_file_is_named_with_the_fix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    message = error_of(missing, {})
    assert f"configuration file {missing} (named by --config) does not exist" in message
    assert "config/scim-bridge.example.yaml" in message
    from_env = error_of(None, {CONFIG_FILE_ENV: str(missing)})
    assert f"(named by {CONFIG_FILE_ENV}) does not exist" in from_env
    assert f"unset {CONFIG_FILE_ENV}" in from_env


def test_invalid_yaml_and_non_mapping_files_are_refused(config_file: Path) -> None:
    assert "is not valid YAML" in error_of(config_file, {}, "port: [8000\n")
    assert "must hold a mapping of keys to values" in error_of(config_file, {}, "- port\n")


def test_missing_nested_key_names_the_variable_to_set(config_file: Path) -> None:
    message = error_of(
        config_file, {}, "jwt:\n  issuer: https://login.example.test/\n  audience: x\n"
    )
    assert f"jwt.jwks_url: required in {config_file}" in message
    assert "SCIM_BRIDGE_JWT__JWKS_URL" in message
    from_env = error_of(None, {"SCIM_BRIDGE_JWT__ISSUER": "https://login.example.test/"})
    assert "jwt.jwks_url: required in the environment (SCIM_BRIDGE_JWT__*)" in from_env
    assert "jwt.audience" in from_env


def test_nested_environment_value_names_its_own_variable(config_file: Path) -> None:
    message = error_of(config_file, {"SCIM_BRIDGE_JWT__LEEWAY_SECONDS": "9999"}, JWT_YAML)
    assert (
        "jwt.leeway_seconds='9999' (from environment variable SCIM_BRIDGE_JWT__LEEWAY_SECONDS)"
        in message
    )
    assert "less than or equal to 600" in message
    bad_url = error_of(config_file, {"SCIM_BRIDGE_JWT__JWKS_URL": "ftp://x/keys"}, JWT_YAML)
    assert "jwt.jwks_url='ftp://x/keys' (from environment variable SCIM_BRIDGE_JWT__JWKS_URL)" in (
        bad_url
    )
    assert "must be an http(s) URL" in bad_url


def test_value_and_section_in_the_environment_conflict() -> None:
    message = error_of(
        None, {"SCIM_BRIDGE_JWT": "yes", "SCIM_BRIDGE_JWT__ISSUER": "https://x.test/"}
    )
    assert "SCIM_BRIDGE_JWT and SCIM_BRIDGE_JWT__ISSUER conflict" in message


def test_every_bad_key_is_reported_at_once(config_file: Path) -> None:
    message = error_of(
        config_file,
        {"SCIM_BRIDGE_LOG_LEVEL": "chatty"},
        "port: abc\ndatabase_url: oracle://x\nmax_body_bytes: 10\nshoe_size: 44\n",
    )
    for key in ("port=", "database_url=", "max_body_bytes=", "shoe_size:", "log_level="):
        assert key in message, f"{key} not reported in {message}"
    assert "must be one of debug, error, info, warning" in message


# -- the CLI reports configuration errors ----------------------------------------------------------


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SCIM_BRIDGE_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("clean_environment")
def test_cli_reports_a_missing_config_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    assert cli.main(["--config", str(missing), "token", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scim-bridge: configuration file")
    assert str(missing) in err


@pytest.mark.usefixtures("clean_environment")
def test_cli_reports_a_bad_environment_value(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCIM_BRIDGE_DATABASE_URL", "mysql://127.0.0.1/bridge")
    assert cli.main(["db", "upgrade"]) == 2
    err = capsys.readouterr().err
    assert "database_url='mysql://127.0.0.1/bridge'" in err
    assert "environment variable SCIM_BRIDGE_DATABASE_URL" in err
    assert "Traceback" not in err
