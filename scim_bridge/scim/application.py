"""The SCIM 2.0 endpoints (mounted at /scim/v2): scim2-server's protocol core over our storage.

What this adds to scim2-server: authentication on every route, a body size limit answered
with 413 before parsing, ``Content-Type`` defaulting to JSON, the IdP dialect normalisation
(``scim/dialects.py``), and one database transaction per request.
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar, Union

from scim2_models import (
    BaseModel,
    Context,
    InvalidValueException,
    ListResponse,
    PatchOp,
    PayloadTooLargeException,
    Resource,
    ResponseParameters,
    ScimProvider,
    SearchRequest,
    UnauthorizedException,
)
from scim2_server.applications.asgi import ASGIApplication, Receive, Scope
from scim2_server.handler import AsyncScimHandler
from scim2_server.requests import ScimRequest
from scim2_server.responses import ScimResponse
from scim2_server.routing import Operation
from scim2_server.service import ScimService
from scim2_server.utils import parametrize

from ..auth import Authenticator
from ..store.scim_storage import SqlScimStorage, declare_write_intent
from .dialects import normalize_request

WRITES = {Operation.create, Operation.replace, Operation.patch, Operation.delete, Operation.bulk}
log = logging.getLogger("scim_bridge.scim")
ModelT = TypeVar("ModelT", bound=BaseModel)


class BridgeService(ScimService):
    """scim2-server's service, answering PATCH with 200 and the resource, and requiring `schemas`.

    RFC 7644 §3.5.2 allows 204, but Entra and Okta expect the resource back.
    """

    def __init__(self, provider: ScimProvider):
        super().__init__(provider)
        # scim2-server parametrizes these generics per request; pydantic caches them only
        # weakly, so a garbage collection makes the next request rebuild them (~9 ms each).
        # Holding them keeps the per-request cost flat.
        models = self.get_models()
        every: Any = Union[tuple(models)]  # noqa: UP007  (a search at the root)
        self._generics = [
            parametrize(generic, model)
            for generic in (PatchOp, ResponseParameters, SearchRequest, ListResponse)
            for model in models
        ] + [parametrize(generic, every) for generic in (SearchRequest, ListResponse)]

    def read_body(
        self, model: type[ModelT], body: bytes, content_type: str | None, scim_ctx: Context
    ) -> ModelT:
        """Validate a request body; its ``schemas`` is required (RFC 7643 §3, RFC 7644 §3.5.2).

        scim2-models accepts a body that omits ``schemas``; a request must still name its schema.
        """
        message = super().read_body(model, body, content_type, scim_ctx)
        if not getattr(message, "schemas", None):
            expected = getattr(model, "__schema__", None)
            fix = f": it must list {expected}" if expected else ""
            raise InvalidValueException(
                detail=f"Field 'schemas' is required but value is missing, null or empty{fix}"
            )
        return message

    def patch_response(
        self,
        base_url: str,
        resource: Resource[Any],
        response_parameters: ResponseParameters[Any],
    ) -> ScimResponse:
        return self.resource_response(
            self.publish(base_url, resource),
            Context.RESOURCE_REPLACEMENT_RESPONSE,
            response_parameters,
        )


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
        super().__init__(storage, provider, BridgeService(provider))
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
        headers = [
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
        ]
        request = ScimRequest(
            method=scope["method"],
            base_url=self.get_base_url(scope),
            path=self.split_path(self.get_path(scope)),
            query=_query(scope),
            headers=headers,
        )
        declared = request.header("Content-Length")
        too_large = (
            declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes
        )
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
            # Some clients send JSON without a Content-Type (or an empty one); SCIM only speaks
            # JSON. An empty header is replaced, not joined to the default (", application/…").
            request.headers = [
                *((name, value) for name, value in headers if name.lower() != "content-type"),
                ("Content-Type", "application/scim+json"),
            ]
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
