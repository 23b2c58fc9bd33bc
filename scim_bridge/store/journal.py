"""The change journal: every SCIM write records what it changed, in its own transaction.

The sync worker (scim_bridge/sync/) turns these records into Coder calls and deletes them
once Coder has the change, so a change a SCIM client got a 2xx for survives crashes,
restarts and Coder outages.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from .tables import SYNC_CHANGES


async def record(connection: AsyncConnection, kind: str, ids: Iterable[str]) -> None:
    """Record that ``kind`` ("group" or "user") ``ids`` changed."""
    stamp = datetime.now(UTC)
    rows = [{"kind": kind, "ref_id": ref, "created": stamp} for ref in sorted(set(ids))]
    for start in range(0, len(rows), 1000):
        await connection.execute(insert(SYNC_CHANGES), rows[start : start + 1000])
