"""The Starlette application: SCIM routes, health, and the lifespan that opens the database."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from .auth import Authenticator, JwtValidator, TokenStore
from .config import Settings
from .scim.application import ScimApplication
from .scim.provider import build_provider
from .store.db import Database
from .store.migrate import ensure_schema
from .store.scim_storage import SqlScimStorage

log = logging.getLogger("scim_bridge")


def create_app(settings: Settings, *, jwt: JwtValidator | None = None) -> Starlette:
    """Build the application; the database opens (and SQLite migrates) when it starts."""
    database = Database(settings.database_url)
    provider = build_provider(settings)
    storage = SqlScimStorage(database, provider)
    if jwt is None and settings.jwt is not None:
        jwt = JwtValidator(settings.jwt)
    authenticator = Authenticator(TokenStore(database), jwt)
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
        log.info("scim-bridge ready: SCIM at /scim/v2 (%s)", database.dialect)
        try:
            yield
        finally:
            await database.dispose()

    app = Starlette(
        routes=[Route("/healthz", health), Mount("/scim", app=cast(ASGIApp, scim))],
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    return app
