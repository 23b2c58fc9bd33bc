"""scim2-server's in-memory test server (``scim2-server`` command), preloaded with resources.

The ``scim2-server`` command starts empty, and loading 100,000 users through its HTTP API
would take longer than the benchmark. This builds the very same server as
``scim2_server.testserver.cli.main`` (default schemas, resource types and configuration, a
static bearer token, ``InMemoryStorage``, the threaded ``wsgiref`` server) and fills its
storage from a JSON-lines file before serving::

    python -m bench.inmemory_server --data resources.jsonl --port 8080 --bearer-token T
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, cast
from wsgiref.simple_server import make_server

from scim2_models import Resource, ScimProvider
from scim2_server.memory import InMemoryStorage
from scim2_server.service import ScimService
from scim2_server.testserver.application import BEARER_TOKEN_SCHEME, BearerTokenApplication
from scim2_server.testserver.cli import ThreadingWSGIServer
from scim2_server.utils import (
    load_default_resource_types,
    load_default_schemas,
    load_default_service_provider_config,
)


def build_application(data: str | None, token: str) -> tuple[BearerTokenApplication, int]:
    """The test server's application, its storage holding the resources of ``data``."""
    config = load_default_service_provider_config()
    config.authentication_schemes = [*(config.authentication_schemes or []), BEARER_TOKEN_SCHEME]
    provider = ScimProvider.from_discovery(
        load_default_schemas().values(), load_default_resource_types().values(), config=config
    )
    models = {
        rt.name: cast(type[Resource[Any]], provider.model_for(rt)) for rt in provider.resource_types
    }
    storage = InMemoryStorage()
    resources: list[Resource[Any]] = []
    if data:
        with open(data) as lines, provider:
            for line in lines:
                payload = json.loads(line)
                model = models[payload["meta"]["resourceType"]]
                resources.append(model.model_validate(payload))
        storage.resources = resources
    service = ScimService(provider)
    return BearerTokenApplication(storage, provider, service, bearer_tokens=[token]), len(resources)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inmemory_server", description=__doc__)
    parser.add_argument("--data", help="JSON lines of resources, each with id and meta")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--bearer-token", required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    application, count = build_application(args.data, args.bearer_token)
    with make_server(args.host, args.port, application, server_class=ThreadingWSGIServer) as server:
        print(
            f"Serving SCIM on http://{args.host}:{args.port}/v2 "
            f"({count} resources loaded in {time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
