"""The SQL storage follows scim2-server's storage contract, on SQLite and PostgreSQL.

The contract checks every filter operator against scim2-models' own evaluator, sorting against
its sort, paging, copies, versions and uniqueness.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from scim2_models import ScimProvider
from scim2_server.testing import AsyncScimStorageContract

from scim_bridge.config import Settings
from scim_bridge.scim.provider import build_provider
from scim_bridge.store.db import Database
from scim_bridge.store.scim_storage import SqlScimStorage


class TestSqlStorageContract(AsyncScimStorageContract):
    @pytest.fixture
    def provider(self) -> ScimProvider:
        return build_provider(Settings())

    @pytest.fixture
    async def async_storage(
        self, database_url: str, provider: ScimProvider
    ) -> AsyncIterator[SqlScimStorage]:
        database = Database(database_url)
        yield SqlScimStorage(database, provider)
        await database.dispose()
