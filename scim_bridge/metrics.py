"""Prometheus metrics, served at ``/metrics`` (docs/coder.md, "Metrics").

Each application has its own registry, so several apps in one process (the tests, the demo)
never share counts. Label values are bounded: SCIM resources outside the known endpoints are
``other``, Coder calls are labelled by method and status only (paths carry UUIDs).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .store.db import Database
from .store.tables import SYNC_CHANGES
from .sync.engine import SyncReport

SCIM_RESOURCES = frozenset(
    {"Users", "Groups", "ServiceProviderConfig", "ResourceTypes", "Schemas", "Bulk", "Me"}
)
HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
_RESOURCE = re.compile(r"/v2/([^/?]+)")


def scim_resource(path: str) -> str:
    """``/scim/v2/Users/123`` → ``Users``; ``/scim/v2/.search`` → ``.search``; else ``other``."""
    found = _RESOURCE.search(path)
    if found is None:
        return "other"
    resource = found.group(1)
    return resource if resource in SCIM_RESOURCES or resource == ".search" else "other"


async def journal_size(database: Database) -> int:
    """Changes recorded by SCIM writes that no sync has carried to Coder yet (every replica)."""
    async with database.transaction(write=False) as connection:
        count = await connection.execute(select(func.count()).select_from(SYNC_CHANGES))
        return int(count.scalar_one())


class BridgeMetrics:
    """The bridge's metrics and the hooks that feed them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.scim_requests = Counter(
            "scim_bridge_scim_requests",
            "SCIM requests answered, by HTTP method, resource and status code",
            ["method", "resource", "status"],
            registry=self.registry,
        )
        self.scim_latency = Histogram(
            "scim_bridge_scim_request_duration_seconds",
            "Time to answer a SCIM request, by HTTP method and resource",
            ["method", "resource"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.sync_runs = Counter(
            "scim_bridge_sync_runs",
            "Coder sync runs, by kind (full, incremental, templates) and result "
            "(ok, failed, held, skipped)",
            ["kind", "result"],
            registry=self.registry,
        )
        self.coder_calls = Counter(
            "scim_bridge_coder_api_calls",
            "Calls to Coder's API (each retry counts), by method and status (0: no answer)",
            ["method", "status"],
            registry=self.registry,
        )
        self.pending_changes = Gauge(
            "scim_bridge_sync_pending_changes",
            "Changes in the journal that have not reached Coder yet (read at each scrape)",
            registry=self.registry,
        )
        self.template_corrections = Counter(
            "scim_bridge_template_acl_corrections",
            "Template ACL entries the bridge set or removed to keep departments isolated",
            registry=self.registry,
        )
        self.template_errors = Gauge(
            "scim_bridge_template_isolation_errors",
            "Problems the last template ACL check found (configuration or Coder refusals); "
            "0 when it applied everything",
            registry=self.registry,
        )
        self.last_success = Gauge(
            "scim_bridge_sync_last_success_timestamp_seconds",
            "Unix time of the last successful sync run of this replica, by kind",
            ["kind"],
            registry=self.registry,
        )

    # -- hooks ------------------------------------------------------------------------------

    def coder_call(self, method: str, status: int) -> None:
        """``CoderClient(on_response=...)``: one answer (or none, status 0) from Coder."""
        self.coder_calls.labels(method.upper(), str(status)).inc()

    def sync_report(self, report: SyncReport) -> None:
        """``SyncWorker(on_report=...)``: one finished sync run."""
        kind = report.kind
        if report.skipped:
            result = "skipped"  # another replica holds the lease
        elif report.failures or (kind == "templates" and report.template_errors):
            result = "failed"
        elif report.held:
            result = "held"  # the failsafe held it until approved
        else:
            result = "ok"
        self.sync_runs.labels(kind, result).inc()
        self.template_corrections.inc(len(report.template_corrections))
        if report.templates_checked or report.template_errors:
            self.template_errors.set(len(report.template_errors))
        if result == "ok":
            self.last_success.labels(kind).set(time.time())

    def scim_middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap the SCIM application: count and time every request."""
        return _ScimMetrics(app, self)

    # -- exposition -------------------------------------------------------------------------

    def endpoint(
        self, pending: Callable[[], Awaitable[int]] | None = None
    ) -> Callable[[Request], Awaitable[Response]]:
        """The ``/metrics`` route; ``pending`` reads the journal's size at each scrape."""

        async def metrics(request: Request) -> Response:
            if pending is not None:
                # A scrape answers even when the database does not (the gauge keeps its value).
                with contextlib.suppress(Exception):
                    self.pending_changes.set(await pending())
            # The Prometheus text format, or OpenMetrics when the scraper asks for it.
            encode, content_type = choose_encoder(request.headers.get("accept", ""))
            return Response(encode(self.registry), headers={"Content-Type": content_type})

        return metrics


class _ScimMetrics:
    def __init__(self, app: ASGIApp, metrics: BridgeMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "")).upper()
        method = method if method in HTTP_METHODS else "other"
        resource = scim_resource(str(scope.get("path", "")))
        status = 500
        started = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.scim_latency.labels(method, resource).observe(
                time.perf_counter() - started
            )
            self.metrics.scim_requests.labels(method, resource, str(status)).inc()
