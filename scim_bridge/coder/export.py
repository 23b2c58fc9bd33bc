"""`scim-bridge export-mapping`: the group-sync settings of mapping mode, as a JSON file.

For operators who apply Coder's settings themselves (``coder organizations settings set
group-sync < file.json``) instead of letting the bridge PATCH them. The mapping comes from the
tree in the database and the stored links to Coder groups; only for groups without a stored
Coder id does it ask Coder, by name, and it says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from ..config import Settings
from ..hierarchy.engine import Inheritance, Tree
from ..store.db import Database
from ..store.migrate import ensure_schema
from ..store.tables import CODER_LINKS
from .client import CoderClient
from .mapping import desired_mapping, group_sync_settings
from .naming import slug
from .plan import Link


class ExportError(Exception):
    """The mapping cannot be exported as asked; the message says what to do."""


@dataclass
class MappingExport:
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)  # for stderr: how ids were found, warnings


async def export_mapping(settings: Settings) -> MappingExport:
    """The whole ``GroupSyncSettings`` object for the bridge's groups (ExportError if some
    group has no Coder group to map to)."""
    database = Database(settings.database_url)
    try:
        await ensure_schema(database)
        async with database.transaction(write=False) as connection:
            tree = await Inheritance(database).tree(connection)
            links = {
                row.scim_group_id: Link(
                    row.scim_group_id, row.coder_group_id, row.coder_name, row.owned
                )
                for row in await connection.execute(select(CODER_LINKS))
            }
    finally:
        await database.dispose()
    notes: list[str] = []
    if not tree.inputs.groups:
        notes.append(
            f"no groups in the database ({settings.database_url.split('@')[-1]}): the mapping "
            "is empty, and applying it would clear the organization's mapping"
        )
    missing = sorted(
        (g for g in tree.inputs.groups if links.get(g) is None or not links[g].coder_group_id),
        key=lambda g: tree.inputs.groups[g].display_name.lower(),
    )
    if missing:
        links, looked_up = await _look_up(settings, tree, links, missing)
        notes.append(
            f"{len(missing)} group(s) had no Coder group id in the database (the bridge has "
            f"not synced them): looked up in Coder at {settings.coder.url}, organization "
            f"{settings.coder.organization}, by name: " + ", ".join(looked_up)
        )
    claim = settings.coder.mapping_claim
    desired = desired_mapping(tree, links, claim)
    notes += desired.warnings(claim)
    exported = group_sync_settings(settings.coder.group_sync_field, desired.mapping)
    return MappingExport(exported, notes)


async def _look_up(
    settings: Settings, tree: Tree, links: dict[str, Link], missing: list[str]
) -> tuple[dict[str, Link], list[str]]:
    """Links for ``missing`` from Coder's groups, by the name the bridge gives (or gave) them."""
    coder = settings.coder
    names = ", ".join(tree.inputs.groups[g].display_name for g in missing)
    if not coder.url or not coder.token:
        raise ExportError(
            f"{len(missing)} group(s) have no Coder group id in the database: {names}. Let the "
            "bridge create them first (run it with coder.mode: mapping), or configure coder.url "
            "and SCIM_BRIDGE_CODER__TOKEN so that export-mapping looks them up in Coder by name"
        )
    async with CoderClient(coder.url, coder.token, rate_limit_per_minute=0) as client:
        organization = await client.organization(coder.organization)
        by_name = {g.name: g for g in await client.groups(organization.id) if not g.is_everyone}
    found = dict(links)
    looked_up: list[str] = []
    not_found: list[str] = []
    for scim_id in missing:
        display = tree.inputs.groups[scim_id].display_name
        link = links.get(scim_id)
        name = link.coder_name if link is not None else slug(display, coder.group_prefix)
        group = by_name.get(name)
        if group is None:
            not_found.append(f"{display} (no Coder group named {name!r})")
            continue
        found[scim_id] = Link(scim_id, group.id, group.name, owned=False)
        looked_up.append(f"{display} → {group.name}")
    if not_found:
        raise ExportError(
            f"{len(not_found)} group(s) have no Coder group to map to, neither in the database "
            f"nor in Coder (organization {coder.organization}): {', '.join(not_found)}. Let the "
            "bridge create them first: run it with coder.mode: mapping"
        )
    return found, looked_up
