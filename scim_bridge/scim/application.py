"""The SCIM 2.0 endpoints (mounted at /scim/v2): scim2-server's protocol core over our storage.

What this adds to scim2-server: authentication on every route, a body size limit answered
with 413 before parsing, ``Content-Type`` defaulting to JSON, the IdP dialect normalisation
(``scim/dialects.py``), and one database transaction per request.
"""

from __future__ import annotations

import logging
from typing import Any

from scim2_models import PayloadTooLargeException, ScimProvider, UnauthorizedException
from scim2_server.applications.asgi import ASGIApplication, Receive, Scope
from scim2_server.handler import AsyncScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import Operation
from scim2_server.service import ScimService

from ..auth import Authenticator
from ..store.scim_storage import SqlScimStorage, declare_write_intent
from .dialects import normalize_request

WRITES = {Operation.create, Operation.replace, Operation.patch, Operation.delete, Operation.bulk}
log = logging.getLogger("scim_bridge.scim")


class BridgeHandler(AsyncScimHandler):
    """Tells the storage, before it opens a transaction, whether the request will write."""

    async def handle(self, request: ScimRequest) -> ScimResponse:
        with self.service.provider:
            target = self.service.match(request)
        declare_write_intent(target.operation in WRITES)
        return await super().handle(request)


class ScimApplication(ASGIApplication):
    def __init__(
        self,
        storage: SqlScimStorage,
        provider: ScimProvider,
        authenticator: Authenticator,
        *,
        max_body_bytes: int,
        public_url: str | None = None,
    ):
        super().__init__(storage, provider, ScimService(provider))
        self.handler = BridgeHandler(self.service, storage)
        self.authenticator = authenticator
        self.max_body_bytes = max_body_bytes
        self.public_url = public_url.rstrip("/") if public_url else None
        self.log = log

    def get_base_url(self, scope: Scope) -> str:  # type: ignore[override]
        if self.public_url:
            return f"{self.public_url}/scim/v2"
        return ASGIApplication.get_base_url(scope)

    async def read_request(self, scope: Scope, receive: Receive) -> ScimRequest:
        """Read at most ``max_body_bytes``; a larger body is refused before it is parsed."""
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]]
        request = ScimRequest(
            method=scope["method"],
            base_url=self.get_base_url(scope),
            path=self.split_path(self.get_path(scope)),
            query=_query(scope),
            headers=headers,
        )
        declared = request.header("Content-Length")
        too_large = declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        body = b""
        more_body = True
        while more_body:
            message = await receive()
            if not too_large:
                body += message.get("body", b"")
                too_large = len(body) > self.max_body_bytes
            more_body = message.get("more_body", False)
        request.body = b"" if too_large else body
        request.subject = _TooLarge() if too_large else None
        if body and not request.header("Content-Type"):
            # Some clients send JSON without a Content-Type; SCIM only speaks JSON.
            request.headers = [*headers, ("Content-Type", "application/scim+json")]
        return request

    async def dispatch_request(self, request: ScimRequest) -> ScimResponse:
        principal = await self.authenticator.authenticate(request.header("Authorization"))
        if principal is None:
            raise UnauthorizedException(
                detail="a valid bearer token is required: Authorization: Bearer <token> "
                "(create one with: scim-bridge token create --name <idp>)"
            )
        if isinstance(request.subject, _TooLarge):
            raise PayloadTooLargeException(
                detail=f"the request body exceeds {self.max_body_bytes} bytes "
                "(setting max_body_bytes)"
            )
        request.subject = principal
        request.body = normalize_request(request.method, request.path, request.body)
        return await self.handler.handle(request)


class _TooLarge:
    """Marks a request whose body was over the limit (answered after authentication)."""


def _query(scope: Scope) -> dict[str, Any]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True))
