"""Mapping mode: the tree as Coder's IdP group-sync ``mapping`` (contract §5.1, §9).

Pure: from a tree snapshot and the links of SCIM groups to Coder groups it computes the
mapping Coder should hold, and the ``add``/``remove`` pairs of ``PATCH
…/settings/idpsync/groups/mapping`` that get it there.

Each IdP claim value — a group's ``displayName``, or its ``externalId`` (Entra puts group
object ids in tokens) — maps to the Coder groups a direct member of that group is effectively
in: the group itself, every ancestor, and every descendant of each cascading group among them
(:meth:`GroupGraph.receivers`). At a user's next OIDC login Coder turns the claim values of
the token into exactly those memberships, so a user lands in the groups API mode would give.

The bridge owns the keys of its SCIM groups — the whole list of each — and never touches any
other key of the mapping. It records every key it writes, so that the key of a SCIM group
renamed or deleted since is emptied instead of granting its old groups at the next login.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..hierarchy.engine import GroupInfo, Tree
from .plan import Link

ClaimAttribute = Literal["displayName", "externalId"]


@dataclass(frozen=True)
class DesiredMapping:
    """What the bridge wants in Coder's mapping, and what kept it from being complete."""

    mapping: dict[str, list[str]]  # claim value -> Coder group ids (sorted)
    without_claim: list[str] = field(default_factory=list)  # displayNames with no claim value
    unlinked: list[str] = field(default_factory=list)  # displayNames with no Coder group yet
    shared: dict[str, list[str]] = field(default_factory=dict)  # value -> its displayNames

    @property
    def keys(self) -> set[str]:
        """The keys the bridge manages."""
        return set(self.mapping)

    def warnings(self, claim: ClaimAttribute) -> list[str]:
        """Why some members would not land where they should, in words for the report."""
        lines = []
        if self.without_claim:
            lines.append(
                f"{len(self.without_claim)} group(s) have no {claim}, so no IdP claim value "
                f"maps to them: {', '.join(self.without_claim)}"
            )
        for value, names in sorted(self.shared.items()):
            lines.append(
                f"groups {', '.join(names)} share the {claim} {value!r}: its mapping grants "
                "the Coder groups of all of them"
            )
        return lines


@dataclass(frozen=True)
class MappingDiff:
    """The body of ``PATCH …/settings/idpsync/groups/mapping``: (given, gets) pairs."""

    add: list[tuple[str, str]] = field(default_factory=list)
    remove: list[tuple[str, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.add or self.remove)

    def describe(self, coder_names: Mapping[str, str]) -> list[str]:
        """One line per pair, naming Coder groups by name where known."""
        lines = [f"+ mapping {given} → {coder_names.get(gets, gets)}" for given, gets in self.add]
        lines += [
            f"- mapping {given} → {coder_names.get(gets, gets)}" for given, gets in self.remove
        ]
        return lines


@dataclass(frozen=True)
class MappingPlan:
    """One mapping-mode sync: the desired mapping, the PATCH that writes it, and warnings."""

    desired: DesiredMapping
    diff: MappingDiff
    warnings: list[str] = field(default_factory=list)
    coder_names: dict[str, str] = field(default_factory=dict)  # Coder group id -> name
    stale: list[str] = field(default_factory=list)  # keys written before, no longer wanted

    def describe(self) -> list[str]:
        return self.diff.describe(self.coder_names)


def claim_value(group: GroupInfo, claim: ClaimAttribute) -> str | None:
    """The value of ``group`` in the IdP's groups claim (matched case-sensitively by Coder)."""
    value = group.display_name if claim == "displayName" else group.external_id
    return value or None


def desired_mapping(
    tree: Tree, links: Mapping[str, Link], claim: ClaimAttribute = "displayName"
) -> DesiredMapping:
    """Each SCIM group's claim value → the Coder group ids of its receivers.

    ``links`` maps SCIM group ids to their Coder groups; a group without a confirmed Coder id
    (not created yet) is left out of every list and named in ``unlinked``.
    """
    groups = tree.inputs.groups
    coder_ids = {
        scim_id: link.coder_group_id
        for scim_id, link in links.items()
        if link.coder_group_id is not None and scim_id in groups
    }
    mapping: dict[str, set[str]] = {}
    owners: dict[str, list[str]] = {}
    without_claim: list[str] = []
    for scim_id in sorted(groups, key=lambda g: (groups[g].display_name.lower(), g)):
        group = groups[scim_id]
        value = claim_value(group, claim)
        if value is None:
            without_claim.append(group.display_name)
            continue
        receivers = tree.graph.receivers(scim_id)
        mapping.setdefault(value, set()).update(coder_ids[r] for r in receivers if r in coder_ids)
        owners.setdefault(value, []).append(group.display_name)
    unlinked = sorted((groups[g].display_name for g in groups if g not in coder_ids), key=str.lower)
    return DesiredMapping(
        mapping={value: sorted(ids) for value, ids in mapping.items()},
        without_claim=without_claim,
        unlinked=unlinked,
        shared={value: names for value, names in owners.items() if len(names) > 1},
    )


def mapping_diff(
    desired: Mapping[str, Sequence[str]],
    current: Mapping[str, Sequence[str] | None] | None,
    stale: Iterable[str] = (),
) -> MappingDiff:
    """The pairs that make each key of ``desired`` hold exactly its list in ``current``, and
    empty each ``stale`` key (one the bridge wrote for a SCIM group since renamed or deleted).

    Only those keys are looked at: every other key of Coder's mapping (written by hand, or by
    another tool) is left as it is.
    """
    current = current or {}
    add: list[tuple[str, str]] = []
    remove: list[tuple[str, str]] = []
    for given in sorted(desired):
        wanted = set(desired[given])
        present = set(current.get(given) or [])
        add += [(given, gets) for gets in sorted(wanted - present)]
        remove += [(given, gets) for gets in sorted(present - wanted)]
    for given in sorted(set(stale) - set(desired)):
        remove += [(given, gets) for gets in sorted(set(current.get(given) or []))]
    return MappingDiff(add, remove)


def group_sync_settings(field_name: str, mapping: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """A whole ``GroupSyncSettings`` object, as ``coder organizations settings set
    group-sync`` reads it (it replaces the organization's settings)."""
    return {
        "field": field_name,
        "mapping": {key: list(mapping[key]) for key in sorted(mapping)},
        "regex_filter": None,
        "auto_create_missing_groups": False,
    }
