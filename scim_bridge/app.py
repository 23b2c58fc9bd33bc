"""The Starlette application: SCIM routes, the admin API, health, and the lifespan that opens
the database."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from .admin.routes import AdminApi
from .auth import Authenticator, JwtValidator, TokenStore
from .config import Settings
from .hierarchy.engine import Inheritance
from .hierarchy.service import HierarchyService
from .metrics import BridgeMetrics, journal_size
from .scim.application import ScimApplication
from .scim.provider import build_provider
from .store.db import Database
from .store.migrate import ensure_schema
from .store.scim_storage import SqlScimStorage
from .sync.engine import build_engine
from .sync.worker import SyncWorker

log = logging.getLogger("scim_bridge")


def reload_on_sighup(hierarchy: HierarchyService) -> None:
    """`kill -HUP` re-reads the hierarchy file (only where the server runs in the main thread)."""
    loop = asyncio.get_running_loop()

    def reload() -> None:
        task = loop.create_task(hierarchy.reload())
        _reloads.add(task)
        task.add_done_callback(_reloads.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, reload)
    except (RuntimeError, ValueError, NotImplementedError):  # not the main thread
        log.debug("SIGHUP reload unavailable outside the main thread")


def stop_reloading_on_sighup() -> None:
    with contextlib.suppress(RuntimeError, ValueError, NotImplementedError):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)


_reloads: set[asyncio.Task[object]] = set()


def create_app(settings: Settings, *, jwt: JwtValidator | None = None) -> Starlette:
    """Build the application; the database opens (and SQLite migrates) when it starts."""
    database = Database(settings.database_url)
    provider = build_provider(settings)
    inheritance = Inheritance(database)
    hierarchy = HierarchyService(database, inheritance, settings.hierarchy)
    storage = SqlScimStorage(database, provider, inheritance)
    if jwt is None and settings.jwt is not None:
        jwt = JwtValidator(settings.jwt)
    tokens = TokenStore(database)
    authenticator = Authenticator(tokens, jwt)  # SCIM: "scim" tokens and JWTs only
    worker = _sync_worker(settings, database)
    metrics = BridgeMetrics()
    if worker is not None:
        worker.engine.client.on_response = metrics.coder_call
        worker.on_report = metrics.sync_report
    admin = AdminApi(settings, database, hierarchy, tokens, worker)  # "admin" tokens only
    scim = ScimApplication(
        storage,
        provider,
        authenticator,
        max_body_bytes=settings.max_body_bytes,
        public_url=settings.public_url,
    )

    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await ensure_schema(database)
        await hierarchy.start()
        reload_on_sighup(hierarchy)
        if worker is not None:
            worker.start()
        log.info(
            "scim-bridge ready: SCIM at /scim/v2, admin API at /admin/api (%s)", database.dialect
        )
        try:
            yield
        finally:
            stop_reloading_on_sighup()
            if worker is not None:
                await worker.stop()
                await worker.engine.client.aclose()
            await database.dispose()

    app = Starlette(
        routes=[
            Route("/healthz", health),
            Route("/metrics", metrics.endpoint(lambda: journal_size(database))),
            Mount("/scim", app=metrics.scim_middleware(cast(ASGIApp, scim))),
            Mount("/admin/api", app=admin.app()),
        ],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.hierarchy = hierarchy
    app.state.sync_worker = worker
    app.state.metrics = metrics
    return app


def _sync_worker(settings: Settings, database: Database) -> SyncWorker | None:
    """The Coder sync, when a Coder URL is configured."""
    if not settings.coder.url or not settings.coder.token:
        return None
    return SyncWorker(build_engine(database, settings.coder), settings.coder)
