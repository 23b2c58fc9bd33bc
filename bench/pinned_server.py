"""``scim-bridge serve`` with scim2-server's per-request generic models pinned (an experiment).

scim2-server parametrizes pydantic generics per request (``ListResponse[Union[…]]`` for every
search, ``SearchRequest[…]``, ``PatchOp[…]``, ``ResponseParameters[…]``). pydantic caches
parametrizations weakly, so whenever the garbage collector has freed one, the next request
builds the class again (~10 ms of CPU each). Holding one strong reference per class keeps
every later parametrization a cache hit. ``python -m bench.scim_bench --pin-generics`` serves
scim-bridge through this module to measure that fix without changing scim_bridge/.
"""

from __future__ import annotations

import sys
from typing import Any, Union

from scim2_models import ListResponse, PatchOp, ResponseParameters, SearchRequest
from scim2_server.utils import parametrize

from scim_bridge.cli import main
from scim_bridge.config import Settings
from scim_bridge.scim.provider import build_provider

PINNED: list[Any] = []


def pin_generics() -> None:
    provider = build_provider(Settings())
    models = tuple(provider.model_for(rt) for rt in provider.resource_types)
    PINNED.append(parametrize(ListResponse, Union[models]))  # noqa: UP007 (as scim2-server)
    for model in models:
        PINNED.extend(
            parametrize(generic, model) for generic in (SearchRequest, PatchOp, ResponseParameters)
        )


if __name__ == "__main__":
    pin_generics()
    sys.exit(main())
