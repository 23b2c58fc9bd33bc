"""The group DAG merged from its three sources, and the inheritance rules on it.

effective(G) = direct members of every group in ``sources(G)``, where
``sources(G) = {G} ∪ descendants(G) ∪ {A ∈ ancestors(G) : A cascades}``
(roll-up from below, cascade from above; see docs/inheritance.md). Pure Python: built once
per change of structure and cached, because member changes only read it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum


class EdgeSource(StrEnum):
    SCIM = "scim"  # a Group member of a SCIM Group
    FILE = "file"  # the hierarchy file
    NAME = "name"  # the naming rule (Engineering/Java is a child of Engineering)


@dataclass
class GroupGraph:
    """Parent→child edges between group ids, each with the sources that declare it."""

    edges: dict[tuple[str, str], set[EdgeSource]] = field(default_factory=dict)
    cascading: set[str] = field(default_factory=set)
    children: dict[str, set[str]] = field(default_factory=dict)
    parents: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def build(
        cls, edges: Iterable[tuple[str, str, EdgeSource]], cascading: Iterable[str] = ()
    ) -> GroupGraph:
        graph = cls(cascading=set(cascading))
        for parent, child, source in edges:
            graph.add_edge(parent, child, source)
        return graph

    def add_edge(self, parent: str, child: str, source: EdgeSource) -> None:
        self.edges.setdefault((parent, child), set()).add(source)
        self.children.setdefault(parent, set()).add(child)
        self.parents.setdefault(child, set()).add(parent)

    def copy(self) -> GroupGraph:
        return GroupGraph.build(
            ((p, c, s) for (p, c), sources in self.edges.items() for s in sources),
            self.cascading,
        )

    def _walk(self, start: str, links: dict[str, set[str]]) -> set[str]:
        seen: set[str] = set()
        stack = list(links.get(start, ()))
        while stack:
            node = stack.pop()
            if node not in seen:
                seen.add(node)
                stack.extend(links.get(node, ()))
        return seen

    def ancestors(self, group: str) -> set[str]:
        return self._walk(group, self.parents)

    def descendants(self, group: str) -> set[str]:
        return self._walk(group, self.children)

    def sources(self, group: str) -> set[str]:
        """The groups whose direct members are effective members of ``group``."""
        cascading_above = {a for a in self.ancestors(group) if a in self.cascading}
        return {group} | self.descendants(group) | cascading_above

    def receivers(self, group: str) -> set[str]:
        """The groups a direct member of ``group`` is an effective member of (inverse of
        :meth:`sources`)."""
        below = self.descendants(group) if group in self.cascading else set()
        return {group} | self.ancestors(group) | below

    def find_cycle(self) -> list[str] | None:
        """A cycle as [g1, g2, …, g1], or None when the graph is a DAG."""
        white, grey, black = 0, 1, 2
        color: dict[str, int] = {}
        nodes = set(self.children) | set(self.parents)
        for root in sorted(nodes):
            if color.get(root, white) != white:
                continue
            path: list[str] = [root]
            iterators: list[Iterator[str]] = [iter(sorted(self.children.get(root, ())))]
            color[root] = grey
            while iterators:
                child = next(iterators[-1], None)
                if child is None:
                    color[path.pop()] = black
                    iterators.pop()
                    continue
                state = color.get(child, white)
                if state == grey:
                    return [*path[path.index(child) :], child]
                if state == white:
                    color[child] = grey
                    path.append(child)
                    iterators.append(iter(sorted(self.children.get(child, ()))))
        return None

    def paths_down(self, top: str, bottom: str, limit: int = 20) -> list[list[str]]:
        """Up to ``limit`` paths top → … → bottom, shortest first."""
        if top == bottom:
            return [[top]]
        on_the_way = self.ancestors(bottom)  # only these can lead down to bottom
        if top not in on_the_way:
            return []
        found: list[list[str]] = []
        frontier: list[list[str]] = [[top]]
        while frontier and len(found) < limit:
            next_frontier: list[list[str]] = []
            for path in frontier:
                for child in sorted(self.children.get(path[-1], ())):
                    if child == bottom:
                        found.append([*path, child])
                    elif child in on_the_way:
                        next_frontier.append([*path, child])
            frontier = next_frontier
        return found[:limit]
