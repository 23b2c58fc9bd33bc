"""The bridge's record of which Coder group each SCIM group became (``coder_group_link``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from ..coder.plan import Link
from ..store.tables import CODER_LINKS


async def read_links(connection: AsyncConnection) -> dict[str, Link]:
    """Every link, by SCIM group id."""
    return {
        row.scim_group_id: Link(row.scim_group_id, row.coder_group_id, row.coder_name, row.owned)
        for row in await connection.execute(select(CODER_LINKS))
    }
