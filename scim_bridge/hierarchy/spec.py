"""The hierarchy file: parent→child edges and cascade flags for IdPs that cannot send nesting.

```yaml
version: 1
groups:
  - group: Engineering          # a displayName (compared case-insensitively, like SCIM)
    cascade: false              # true: direct members of Engineering are in every subgroup
    children: [Java, Python, Mainframe]
  - group: {externalId: 0b8c0f7e-…}   # or an externalId (Entra object id), compared exactly
    children: [{displayName: Java}]
```

A group the file names that has not been provisioned yet is allowed: its edges take effect
when it arrives. The file is validated as a whole (syntax, duplicates, cycles among its own
edges); cycles with the other sources are checked when it is applied.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..store.flatten import fold


class HierarchyError(Exception):
    """The hierarchy file is invalid; the message lists every problem and where it is."""


class GroupRef(BaseModel):
    """A group named by displayName or by externalId."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    display_name: str | None = Field(default=None, alias="displayName", min_length=1)
    external_id: str | None = Field(default=None, alias="externalId", min_length=1)

    def model_post_init(self, _: Any) -> None:
        if (self.display_name is None) == (self.external_id is None):
            raise ValueError("name a group by exactly one of displayName or externalId")

    @property
    def key(self) -> tuple[str, str]:
        """What the ref matches: ("name", folded displayName) or ("external", externalId)."""
        if self.display_name is not None:
            return ("name", fold(self.display_name, False))
        return ("external", str(self.external_id))

    def __str__(self) -> str:
        if self.display_name is not None:
            return self.display_name
        return f"externalId {self.external_id}"


def group_ref(value: Any) -> Any:
    """A group is named by its displayName (a plain string) or ``{externalId: ...}``."""
    return {"displayName": value} if isinstance(value, str) else value


class GroupEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group: GroupRef
    cascade: bool = False
    children: list[GroupRef] = Field(default_factory=list)

    @field_validator("group", mode="before")
    @classmethod
    def _group(cls, value: Any) -> Any:
        return group_ref(value)

    @field_validator("children", mode="before")
    @classmethod
    def _children(cls, value: Any) -> Any:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError("children must be a list of groups")
        return [group_ref(v) for v in value]


class HierarchySpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    groups: list[GroupEntry] = Field(default_factory=list)

    def edges(self) -> list[tuple[GroupRef, GroupRef]]:
        return [(entry.group, child) for entry in self.groups for child in entry.children]

    def cascading(self) -> list[GroupRef]:
        return [entry.group for entry in self.groups if entry.cascade]


def parse_spec(text: str, source: str = "hierarchy file") -> HierarchySpec:
    """Validate a hierarchy file's text; raise HierarchyError listing every problem."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise HierarchyError(f"{source} is not valid YAML: {error}") from error
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise HierarchyError(f"{source} must be a mapping with `version: 1` and `groups:`")
    try:
        spec = HierarchySpec.model_validate(data)
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            problems.append(f"{where}: {problem['msg'].removeprefix('Value error, ')}")
        raise HierarchyError(f"{source} is invalid:\n  " + "\n  ".join(problems)) from error
    problems = _duplicates(spec) + _own_cycle(spec)
    if problems:
        raise HierarchyError(f"{source} is invalid:\n  " + "\n  ".join(problems))
    return spec


def load_spec(path: str | Path) -> HierarchySpec:
    file = Path(path)
    if not file.is_file():
        raise HierarchyError(f"hierarchy file {file} does not exist")
    return parse_spec(file.read_text(), str(file))


def _duplicates(spec: HierarchySpec) -> list[str]:
    seen: dict[tuple[str, str], int] = {}
    problems = []
    for index, entry in enumerate(spec.groups):
        if entry.group.key in seen:
            problems.append(
                f"groups.{index}: {entry.group} is listed again (first at groups."
                f"{seen[entry.group.key]}); merge its children into one entry"
            )
        seen.setdefault(entry.group.key, index)
        for child in entry.children:
            if child.key == entry.group.key:
                problems.append(f"groups.{index}: {entry.group} cannot be its own child")
    return problems


def _own_cycle(spec: HierarchySpec) -> list[str]:
    from .graph import EdgeSource, GroupGraph

    names = {}
    edges = []
    for parent, child in spec.edges():
        names[parent.key], names[child.key] = str(parent), str(child)
        edges.append(("\0".join(parent.key), "\0".join(child.key), EdgeSource.FILE))
    cycle = GroupGraph.build(edges).find_cycle()
    if cycle is None:
        return []
    spelled = " → ".join(names[tuple(node.split("\0"))] for node in cycle)  # type: ignore[index]
    return [f"the file makes a cycle: {spelled}; a group cannot contain its own ancestor"]
