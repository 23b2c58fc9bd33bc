"""`scim-bridge hierarchy check FILE`: is a hierarchy file valid, alone and with the groups the
IdPs have provisioned? Nothing is written: the tree the file would make is built in memory
(TreeInputs.build) and looked at, exactly as a reload would before applying it."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..hierarchy.engine import Inheritance, Tree, TreeInputs
from ..hierarchy.graph import EdgeSource, GroupGraph
from ..hierarchy.spec import GroupRef, HierarchySpec
from ..store.db import Database


@dataclass
class CheckReport:
    """What the check found: ``problems`` make it fail, ``notes`` inform."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def summarize(spec: HierarchySpec) -> str:
    edges = spec.edges()
    named = {ref.key for pair in edges for ref in pair} | {e.group.key for e in spec.groups}
    cascading = [str(ref) for ref in spec.cascading()]
    text = (
        f"{len(named)} group{'' if len(named) == 1 else 's'} named, "
        f"{len(edges)} parent→child edge{'' if len(edges) == 1 else 's'}"
    )
    if cascading:
        text += f", cascading: {', '.join(cascading)}"
    return text


def _named(spec: HierarchySpec) -> list[GroupRef]:
    """Every group the file names, once, in the order it names them."""
    seen: dict[tuple[str, str], GroupRef] = {}
    for entry in spec.groups:
        seen.setdefault(entry.group.key, entry.group)
        for child in entry.children:
            seen.setdefault(child.key, child)
    return list(seen.values())


def _spell_cycle(cycle: list[str], graph: GroupGraph, inputs: TreeInputs) -> str:
    """A → B → A [A → B (file); B → A (scim)]: the cycle, and where each of its edges is from."""
    names = inputs.names(cycle)
    links = [
        f"{names[i]} → {names[i + 1]} ({', '.join(sorted(graph.edges[(cycle[i], cycle[i + 1])]))})"
        for i in range(len(cycle) - 1)
    ]
    return " → ".join(names) + " [" + "; ".join(links) + "]"


def _file_edges(graph: GroupGraph, inputs: TreeInputs) -> set[tuple[str, str]]:
    """The edges the hierarchy file gives, by displayName."""
    named = inputs.names
    return {
        (named([parent])[0], named([child])[0])
        for (parent, child), sources in graph.edges.items()
        if EdgeSource.FILE in sources
    }


async def check_against_database(
    database: Database, spec: HierarchySpec, delimiter: str | None
) -> CheckReport:
    """Cycles with the provisioned groups (SCIM nesting, naming rule), the groups the file
    names that are not provisioned yet, and what applying the file would change."""
    report = CheckReport()
    async with database.transaction(write=False) as connection:
        current: Tree = await Inheritance(database).tree(connection)
    inputs = replace(current.inputs, spec=spec, delimiter=delimiter or None)
    graph = inputs.build()
    report.notes.append(
        f"checked against {len(inputs.groups)} provisioned groups in the database "
        f"({database.dialect})"
    )
    cycle = graph.find_cycle()
    if cycle is not None:
        report.problems.append(
            "with the provisioned groups the file makes a cycle: "
            + _spell_cycle(cycle, graph, inputs)
            + "; a group cannot contain its own ancestor: remove one of these edges "
            "(from the file, or the nesting in the IdP)"
        )
    resolver = inputs.resolver()
    missing = [str(ref) for ref in _named(spec) if ref.key not in resolver]
    if missing:
        report.notes.append(
            "not provisioned yet (their edges take effect when they arrive): " + ", ".join(missing)
        )
    if cycle is None:
        before = _file_edges(current.graph, current.inputs)
        after = _file_edges(graph, inputs)
        added, removed = sorted(after - before), sorted(before - after)
        cascade_on = sorted(inputs.names(sorted(graph.cascading - current.graph.cascading)))
        cascade_off = sorted(inputs.names(sorted(current.graph.cascading - graph.cascading)))
        if not (added or removed or cascade_on or cascade_off):
            report.notes.append("applying it changes nothing in the tree in force")
        else:
            report.notes.append("applying it would change the tree in force:")
            report.notes += [f"  + {p} → {c}" for p, c in added]
            report.notes += [f"  - {p} → {c}" for p, c in removed]
            report.notes += [f"  + cascade {g}" for g in cascade_on]
            report.notes += [f"  - cascade {g}" for g in cascade_off]
    return report
