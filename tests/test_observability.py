"""Observability: Prometheus metrics at /metrics (SCIM requests, sync runs, Coder calls, the
journal) and structured JSON logs (`log_format: json`).

The HTTP tests run the bridge with uvicorn on 127.0.0.1, on SQLite and PostgreSQL (the pending
changes gauge reads the journal table).
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from scim_bridge import cli
from scim_bridge.coder.client import CoderClient
from scim_bridge.coderdouble.config import DoubleConfig
from scim_bridge.config import ConfigError, Settings, load_settings
from scim_bridge.logs import JsonFormatter, logging_config
from scim_bridge.metrics import BridgeMetrics, scim_resource
from scim_bridge.sync.engine import SyncReport
from tests.coder_fixtures import LiveCoder, coder_settings, eventually, run_coder_double
from tests.server import LiveServer, create_token, run_server

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"


def scrape(server: LiveServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics (no token) and return each sample: (name, sorted labels) → value."""
    response = httpx.get(f"{server.url}/metrics", timeout=30)
    assert response.status_code == 200, response.text
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


# -- /metrics over HTTP ------------------------------------------------------------------------


def test_metrics_are_served_in_the_prometheus_text_format(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE scim_bridge_scim_requests_total counter" in response.text


def test_scim_request_is_counted_by_method_resource_and_status(
    live_server: LiveServer, scim: httpx.Client
) -> None:
    assert scim.get("/Users").status_code == 200

    samples = scrape(live_server)
    key = labels(method="GET", resource="Users", status="200")
    assert samples[("scim_bridge_scim_requests_total", key)] == 1.0


def test_scim_request_latency_is_observed(live_server: LiveServer, scim: httpx.Client) -> None:
    scim.get("/Groups")
    scim.get("/Groups")

    samples = scrape(live_server)
    key = labels(method="GET", resource="Groups")
    assert samples[("scim_bridge_scim_request_duration_seconds_count", key)] == 2.0


def test_refused_scim_request_is_counted_with_its_status(live_server: LiveServer) -> None:
    response = httpx.get(f"{live_server.scim_url}/Users", timeout=30)
    assert response.status_code == 401

    samples = scrape(live_server)
    key = labels(method="GET", resource="Users", status="401")
    assert samples[("scim_bridge_scim_requests_total", key)] == 1.0


def test_pending_changes_gauge_counts_the_journal(
    live_server: LiveServer, scim: httpx.Client
) -> None:
    # No Coder is configured: nothing drains the journal.
    created = scim.post("/Users", json={"schemas": [USER], "userName": "alice"})
    assert created.status_code == 201

    assert scrape(live_server)[("scim_bridge_sync_pending_changes", ())] == 1.0


# -- sync and Coder calls, against the Coder double ----------------------------------------------


@pytest.fixture
def synced_bridge(database_url: str) -> Iterator[LiveServer]:
    """The bridge syncing into a live Coder double, after one group reached Coder."""
    with run_coder_double(DoubleConfig(rate_limit=0)) as coder:
        coder.state.create_user("alice", "alice@example.com")
        settings = Settings(
            database_url=database_url,
            coder=coder_settings(coder),
        )
        token = asyncio.run(create_token(database_url, "tests"))
        with run_server(settings, token) as server:
            _provision_and_wait(server, coder)
            yield server


def _provision_and_wait(server: LiveServer, coder: LiveCoder) -> None:
    headers = {"Authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.scim_url, headers=headers, timeout=30) as scim:
        body = {"schemas": [USER], "userName": "alice", "emails": [{"value": "alice@example.com"}]}
        alice = scim.post("/Users", json=body).json()["id"]
        group = {"schemas": [GROUP], "displayName": "Java", "members": [{"value": alice}]}
        assert scim.post("/Groups", json=group).status_code == 201

    def reached_coder() -> None:
        java = coder.state.groups_named().get("java")
        assert java is not None and coder.state.member_usernames(java) == {"alice"}
        assert scrape(server)[("scim_bridge_sync_pending_changes", ())] == 0.0

    eventually(reached_coder)


def test_successful_sync_runs_are_counted_by_kind(synced_bridge: LiveServer) -> None:
    samples = scrape(synced_bridge)
    runs = {
        key: value
        for (name, key), value in samples.items()
        if name == "scim_bridge_sync_runs_total"
    }
    assert runs[labels(kind="full", result="ok")] >= 1.0  # the start-up resync
    assert runs[labels(kind="incremental", result="ok")] >= 1.0  # the journal


def test_last_successful_sync_time_is_exposed(synced_bridge: LiveServer) -> None:
    samples = scrape(synced_bridge)
    key = ("scim_bridge_sync_last_success_timestamp_seconds", labels(kind="incremental"))
    assert samples[key] > 1_700_000_000


def test_coder_api_calls_are_counted_by_method_and_status(synced_bridge: LiveServer) -> None:
    samples = scrape(synced_bridge)
    calls = {
        key: value
        for (name, key), value in samples.items()
        if name == "scim_bridge_coder_api_calls_total"
    }
    assert calls[labels(method="POST", status="201")] >= 1.0  # the group was created
    assert calls[labels(method="GET", status="200")] >= 1.0


# -- the pieces, without a server --------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "resource"),
    [
        ("/scim/v2/Users/2819c223", "Users"),
        ("/scim/v2/Groups", "Groups"),
        ("/scim/v2/.search", ".search"),
        ("/scim/v2/Schemas/urn:ietf:params:scim:schemas:core:2.0:User", "Schemas"),
        ("/scim/v2/Anything-the-client-makes-up", "other"),
        ("/scim/elsewhere", "other"),
    ],
)
def test_scim_resource_label_is_one_of_a_bounded_set(path: str, resource: str) -> None:
    assert scim_resource(path) == resource


def test_failed_sync_run_counts_as_failed_and_keeps_the_last_success_time() -> None:
    metrics = BridgeMetrics()
    report = SyncReport(full=True, started="", failures=["Coder answered 500"])

    metrics.sync_report(report)

    assert (
        metrics.registry.get_sample_value(
            "scim_bridge_sync_runs_total", {"kind": "full", "result": "failed"}
        )
        == 1.0
    )
    assert (
        metrics.registry.get_sample_value(
            "scim_bridge_sync_last_success_timestamp_seconds", {"kind": "full"}
        )
        is None
    )


async def test_coder_client_reports_every_attempt_to_its_callback() -> None:
    answers = iter([httpx.Response(503, json={"message": "busy"}), httpx.Response(200, json={})])
    seen: list[tuple[str, int]] = []

    async def no_sleep(_: float) -> None:
        return None

    client = CoderClient(
        "http://127.0.0.1:1",
        "token",
        transport=httpx.MockTransport(lambda _: next(answers)),
        rate_limit_per_minute=0,
        sleep=no_sleep,
        on_response=lambda method, status: seen.append((method, status)),
    )
    async with client:
        await client.request("GET", "/users")

    assert seen == [("GET", 503), ("GET", 200)]


# -- structured logs ---------------------------------------------------------------------------


def json_line(record: logging.LogRecord) -> dict[str, Any]:
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_json_log_line_carries_time_level_logger_and_message() -> None:
    record = logging.LogRecord(
        "scim_bridge.sync", logging.WARNING, __file__, 1, "sync of %d groups", (3,), None
    )

    entry = json_line(record)

    assert {k: entry[k] for k in ("level", "logger", "message")} == {
        "level": "WARNING",
        "logger": "scim_bridge.sync",
        "message": "sync of 3 groups",
    }
    assert entry["time"].endswith("+00:00")


def test_json_log_line_keeps_the_exception() -> None:
    try:
        raise RuntimeError("Coder is down\nsecond line")
    except RuntimeError:
        record = logging.LogRecord(
            "scim_bridge", logging.ERROR, __file__, 1, "failed", None, sys.exc_info()
        )

    assert "RuntimeError: Coder is down" in json_line(record)["exception"]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put back what `dictConfig` changes: the root's and uvicorn's/httpx's loggers."""
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access", "httpx", "httpcore"]
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in loggers]
    try:
        yield
    finally:
        for logger, (handlers, level, propagate, disabled) in zip(loggers, saved, strict=True):
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


@pytest.mark.usefixtures("restore_logging")
def test_json_logging_config_writes_one_json_line_per_record_of_any_logger(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logging.config.dictConfig(logging_config("json", "info"))

    logging.getLogger("scim_bridge.sync").info("sync finished")
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)

    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("scim_bridge.sync", "sync finished"),
        ("uvicorn.error", "Started server process [42]"),
    ]


def test_serve_hands_uvicorn_the_configured_log_format(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import uvicorn

    seen: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: seen.update(options))
    monkeypatch.setenv("SCIM_BRIDGE_LOG_FORMAT", "json")
    monkeypatch.setenv("SCIM_BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'bridge.db'}")

    assert cli.main(["serve"]) == 0
    formatter = seen["log_config"]["formatters"]["scim_bridge"]
    assert formatter == {"()": "scim_bridge.logs.JsonFormatter"}


def test_log_format_is_validated() -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(None, {"SCIM_BRIDGE_LOG_FORMAT": "xml"})

    message = str(raised.value)
    assert "log_format='xml'" in message and "text" in message and "json" in message


def test_log_format_defaults_to_text() -> None:
    assert load_settings(None, {}).log_format == "text"
