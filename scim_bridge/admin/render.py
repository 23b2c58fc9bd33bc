"""The text of `scim-bridge tree` and `scim-bridge explain`, from the admin API's views."""

from __future__ import annotations

from typing import Any


def _label(node: dict[str, Any]) -> str:
    flags = [f"direct {node['directMembers']}", f"effective {node['effectiveMembers']}"]
    if node["cascade"]:
        flags.append("cascade")
    return f"{node['displayName']}  [{', '.join(flags)}]"


def render_tree(view: dict[str, Any]) -> str:
    """The tree from its roots, children indented under each parent with the sources of the
    edge; a group with several parents appears (with its subtree) under each of them."""
    nodes: dict[str, dict[str, Any]] = {node["id"]: node for node in view["groups"]}
    if not nodes:
        return "no groups yet: provision groups over SCIM (see README.md)"
    lines: list[str] = []

    def name_of(edge: dict[str, Any]) -> str:
        return str(nodes[edge["id"]]["displayName"]).lower() if edge["id"] in nodes else ""

    def walk(group_id: str, indent: str, above: frozenset[str]) -> None:
        children = sorted(nodes[group_id]["children"], key=name_of)
        for index, edge in enumerate(children):
            child = nodes.get(edge["id"])
            if child is None or edge["id"] in above:  # not a DAG: never loop
                continue
            last = index == len(children) - 1
            sources = ", ".join(edge["sources"])
            lines.append(f"{indent}{'└─' if last else '├─'} {_label(child)} ({sources})")
            walk(edge["id"], indent + ("   " if last else "│  "), above | {edge["id"]})

    for root in view["roots"]:
        lines.append(_label(nodes[root]))
        walk(root, "  ", frozenset({root}))
    return "\n".join(lines)


def _reasons(group: dict[str, Any]) -> str:
    return "; ".join(reason["text"] for reason in group["reasons"])


def render_explain(view: dict[str, Any], group_ref: str | None = None) -> str:
    """Every group the user is effectively in (or the one asked about), each with the
    path(s) that put them there."""
    who = view["userName"]
    if not view["active"]:
        return f"{who} is deactivated: {view['note'].removeprefix('deactivated: ')}"
    groups = view["groups"]
    if group_ref is not None:
        if not groups:
            return (
                f"{who} is not in {group_ref}: not a member of it, of any group below it, "
                "or of a cascading group above it"
            )
        group = groups[0]
        return f"{who} is in {group['displayName']}: {_reasons(group)}"
    if not groups:
        return f"{who} is in no groups"
    plural = "group" if len(groups) == 1 else "groups"
    lines = [f"{who} is effectively in {len(groups)} {plural}:"]
    lines += [f"  {group['displayName']}: {_reasons(group)}" for group in groups]
    return "\n".join(lines)
