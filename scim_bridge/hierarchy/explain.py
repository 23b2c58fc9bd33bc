"""Why a user is effectively in a group: directly, via a chain of groups, or by cascade."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .graph import GroupGraph

MAX_PATHS = 20


@dataclass(frozen=True)
class Reason:
    """One reason; ``path`` lists group ids from the user's group up to the group (via), or
    the cascading group alone (cascade), or the group itself (direct)."""

    kind: Literal["direct", "via", "cascade"]
    path: tuple[str, ...]

    def describe(self, names: dict[str, str]) -> str:
        spelled = [names.get(g, g) for g in self.path]
        if self.kind == "direct":
            return "direct"
        if self.kind == "cascade":
            return f"cascade from {spelled[0]}"
        return "via " + " → ".join(spelled)


def reasons(graph: GroupGraph, direct_groups: set[str], group: str) -> list[Reason]:
    """Every reason a member of ``direct_groups`` is effectively in ``group`` (none: not in)."""
    found: list[Reason] = []
    if group in direct_groups:
        found.append(Reason("direct", (group,)))
    below = graph.descendants(group)
    for source in sorted(direct_groups & below):
        for path in graph.paths_down(group, source, MAX_PATHS):
            found.append(Reason("via", tuple(reversed(path))))
    for ancestor in sorted(graph.ancestors(group) & direct_groups & graph.cascading):
        found.append(Reason("cascade", (ancestor,)))
    return found
