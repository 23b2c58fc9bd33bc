"""Department template isolation (contract §7): which templates each department owns, the ACL
each of them should have, and the partial-merge PATCH that gets it there.

Pure: ``sync/templates.py`` reads the tree, the bridge's links and Coder's templates and ACLs,
and this module decides. The rules (docs/template-isolation.md):

- the department's admin group gets ``admin``, its user group ``use`` (default: the department
  group, whose effective members include its subgroups), the department group's ancestors
  ``use`` only with ``ancestors_use``, and each of its ``grants`` its role;
- every other group the bridge manages loses its entry (another department's admins, a
  parent the department did not ask for);
- ``Everyone`` is removed where the department is ``isolated``, and otherwise left alone;
- entries of groups and users the bridge does not manage are drift: reported, and removed
  only when the department is ``strict``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from ..config import DepartmentSettings, TemplateIsolationSettings
from ..hierarchy.engine import Tree
from ..hierarchy.spec import GroupRef
from .client import Template, TemplateAcl
from .plan import Link

RANK = {"": 0, "use": 1, "admin": 2}
EVERYONE = "Everyone"


class TemplateIsolationError(Exception):
    """The departments' configuration does not fit the tree or Coder's templates; nothing
    is applied. The message names every problem and how to fix it."""


@dataclass(frozen=True)
class Grant:
    group: str  # the Coder group's name (or the SCIM displayName while it has none)
    role: str
    why: str  # "admin group", "user group", "ancestor of java", "grant"


@dataclass
class Department:
    name: str
    patterns: list[str]
    isolated: bool
    strict: bool
    grants: dict[str, Grant] = field(default_factory=dict)  # Coder group id -> grant
    waiting: list[Grant] = field(default_factory=list)  # groups not in Coder yet

    def matching(self, template_name: str) -> list[str]:
        """Its patterns that match the template (case-insensitively, like Coder's names).
        fnmatch caches each compiled pattern, so a check compiles none twice."""
        name = template_name.lower()
        return [p for p in self.patterns if fnmatchcase(name, p.lower())]

    def fingerprint(self) -> tuple[Any, ...]:
        """What the ACLs of its templates depend on (for skipping an unchanged check)."""
        grants = sorted((gid, g.role) for gid, g in self.grants.items())
        return (self.name, tuple(self.patterns), self.isolated, self.strict, tuple(grants))


def resolve_departments(
    settings: TemplateIsolationSettings, tree: Tree, links: dict[str, Link]
) -> tuple[list[Department], dict[str, str]]:
    """The departments with their groups found in the tree and in Coder, and a label for
    every Coder group the bridge manages (``department python's admin group``, …).

    Raises :class:`TemplateIsolationError` naming each department whose groups do not exist."""
    keys = tree.inputs.resolver()
    problems: list[str] = []
    departments: list[Department] = []
    managed: dict[str, str] = {
        link.coder_group_id: "managed by the bridge"
        for link in links.values()
        if link.coder_group_id is not None
    }
    for position, config in enumerate(settings.departments):
        where = f"coder.template_isolation.departments[{position}]"
        found = _Finder(keys, config, where, problems)
        department_group = found(config.group, "group")
        admin_group = found(config.admin_group, "admin_group")
        user_group = found(config.user_group, "user_group") if config.user_group else None
        extra = [(found(grant.group, "grants"), grant.role) for grant in config.grants]
        if department_group is None or admin_group is None:
            continue
        wanted: list[tuple[str, str, str]] = [(admin_group, "admin", "admin group")]
        wanted.append((user_group or department_group, "use", "user group"))
        if config.ancestors_use:
            wanted += [
                (a, "use", f"ancestor of {config.name}")
                for a in sorted(tree.graph.ancestors(department_group))
            ]
        wanted += [(gid, role, "grant") for gid, role in extra if gid is not None]
        department = Department(
            config.name,
            list(config.templates),
            config.isolated,
            settings.strict if config.strict is None else config.strict,
        )
        for scim_id, role, why in wanted:
            link = links.get(scim_id)
            if link is None or link.coder_group_id is None:
                name = tree.inputs.groups[scim_id].display_name
                department.waiting.append(Grant(name, role, why))
                continue
            current = department.grants.get(link.coder_group_id)
            if current is None or RANK[role] > RANK[current.role]:
                department.grants[link.coder_group_id] = Grant(link.coder_name, role, why)
        for coder_id, grant in department.grants.items():
            if grant.why in ("admin group", "user group"):
                managed[coder_id] = f"department {config.name}'s {grant.why}"
        departments.append(department)
    if problems:
        raise TemplateIsolationError("; ".join(problems))
    return departments, managed


@dataclass
class _Finder:
    """Resolves a department's group references, noting each one that does not exist."""

    keys: dict[tuple[str, str], str]
    config: DepartmentSettings
    where: str
    problems: list[str]

    def __call__(self, ref: GroupRef, key: str) -> str | None:
        found = self.keys.get(ref.key)
        if found is None:
            self.problems.append(
                f"department {self.config.name} names {key} {str(ref)!r}, which is not a "
                f"provisioned group: provision it, or fix {self.where}.{key}"
            )
        return found


def assign_templates(
    departments: list[Department], templates: Iterable[Template]
) -> tuple[dict[str, Department], list[str]]:
    """Each live template's department (by template id), and warnings for departments that
    own no template. Raises :class:`TemplateIsolationError` for a template two departments
    claim."""
    owner: dict[str, Department] = {}
    problems: list[str] = []
    matched: set[str] = set()
    for template in sorted(templates, key=lambda t: t.name):
        if template.deleted:
            continue
        claims = [d for d in departments if d.matching(template.name)]
        if len(claims) > 1:
            named = " and ".join(
                f"{d.name} ({', '.join(d.matching(template.name))})" for d in claims
            )
            problems.append(
                f"template {template.name} matches departments {named}; a template belongs "
                "to one department: narrow the patterns in coder.template_isolation"
            )
        elif claims:
            owner[template.id] = claims[0]
            matched.add(claims[0].name)
    if problems:
        raise TemplateIsolationError("; ".join(problems))
    warnings = [
        f"department {d.name} owns no template: no Coder template matches {', '.join(d.patterns)}"
        for d in departments
        if d.name not in matched
    ]
    return owner, warnings


@dataclass
class AclEntry:
    """One entry of a template's ACL as it is and as the bridge wants it."""

    kind: str  # "group" or "user"
    id: str
    name: str
    role: str  # now ("" if absent)
    wanted: str | None  # what it becomes ("" removes); None: left as it is
    why: str
    unmanaged: bool = False  # a group or user the bridge does not manage

    @property
    def changes(self) -> bool:
        return self.wanted is not None and self.wanted != self.role

    @property
    def action(self) -> str:
        if not self.changes:
            return "keep"
        if not self.wanted:
            return "remove"
        return "add" if not self.role else "change"

    def as_json(self) -> dict[str, Any]:
        """``role`` now and the role it ``becomes`` (null: no entry), with the ``action``."""
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "role": self.role or None,
            "becomes": (self.wanted or None) if self.changes else self.role or None,
            "action": self.action,
            "why": self.why,
        }


@dataclass
class TemplateAclChange:
    template_id: str
    template: str
    department: str
    entries: list[AclEntry] = field(default_factory=list)
    waiting: list[Grant] = field(default_factory=list)

    @property
    def group_perms(self) -> dict[str, str]:
        return {e.id: str(e.wanted) for e in self.entries if e.kind == "group" and e.changes}

    @property
    def user_perms(self) -> dict[str, str]:
        return {e.id: str(e.wanted) for e in self.entries if e.kind == "user" and e.changes}

    @property
    def changed(self) -> bool:
        return any(e.changes for e in self.entries)

    def corrections(self) -> list[str]:
        """One line per entry that changes: who had what, what it becomes, and why."""
        return [
            f"template {self.template} (department {self.department}): {e.kind} {e.name} "
            f"{e.role or 'none'} → {e.wanted or 'removed'} ({e.why})"
            for e in self.entries
            if e.changes
        ]

    def drift(self) -> list[str]:
        """Entries the bridge does not manage and keeps (the department is not strict)."""
        return [
            f"template {self.template} (department {self.department}): {e.kind} {e.name} has "
            f"{e.role} ({e.why})"
            for e in self.entries
            if e.unmanaged and e.wanted is None
        ]

    def as_json(self) -> dict[str, Any]:
        return {
            "template": self.template,
            "id": self.template_id,
            "in_sync": not self.changed and not self.waiting,
            "acl": [e.as_json() for e in self.entries],
            "waiting": [
                {"group": g.group, "role": g.role, "why": f"{g.why}; not in Coder yet"}
                for g in self.waiting
            ],
        }


def plan_template_acl(
    template: Template,
    department: Department,
    acl: TemplateAcl,
    managed: dict[str, str],
    organization_id: str,
) -> TemplateAclChange:
    """The entries of one template's ACL, each with what it should become."""
    change = TemplateAclChange(template.id, template.name, department.name)
    change.waiting = list(department.waiting)
    present: set[str] = set()
    for group in sorted(acl.groups, key=lambda g: g.name):
        present.add(group.id)
        name = group.name or group.display_name or group.id
        grant = department.grants.get(group.id)
        if group.id == organization_id:  # Everyone (§3.4)
            if department.isolated:
                change.entries.append(
                    AclEntry(
                        "group", group.id, EVERYONE, group.role, "", "the department is isolated"
                    )
                )
            else:
                change.entries.append(
                    AclEntry("group", group.id, EVERYONE, group.role, None, "not isolated")
                )
        elif grant is not None:
            change.entries.append(
                AclEntry("group", group.id, name, group.role, grant.role, grant.why)
            )
        elif group.id in managed:
            change.entries.append(
                AclEntry(
                    "group",
                    group.id,
                    name,
                    group.role,
                    "",
                    f"{managed[group.id]}, no grant of {department.name}",
                )
            )
        else:
            change.entries.append(_unmanaged("group", group.id, name, group.role, department))
    for coder_id, grant in sorted(department.grants.items(), key=lambda item: item[1].group):
        if coder_id not in present:
            change.entries.append(
                AclEntry("group", coder_id, grant.group, "", grant.role, grant.why)
            )
    for user in sorted(acl.users, key=lambda u: u.username):
        change.entries.append(_unmanaged("user", user.id, user.username, user.role, department))
    return change


def _unmanaged(kind: str, entry_id: str, name: str, role: str, department: Department) -> AclEntry:
    if department.strict:
        return AclEntry(kind, entry_id, name, role, "", "not managed by the bridge; strict", True)
    why = "not managed by the bridge; kept, strict is off"
    return AclEntry(kind, entry_id, name, role, None, why, True)


@dataclass
class TemplateAclPlan:
    """Every owned template's ACL change, plus what the operator should know."""

    templates: list[TemplateAclChange] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unowned: list[str] = field(default_factory=list)  # templates of no department
    departments: list[Department] = field(default_factory=list)
    fingerprint: tuple[Any, ...] = ()  # what the ACLs were computed from

    @property
    def changes(self) -> list[TemplateAclChange]:
        return [t for t in self.templates if t.changed]

    def corrections(self) -> list[str]:
        return [line for t in self.templates for line in t.corrections()]

    def drift(self) -> list[str]:
        return [line for t in self.templates for line in t.drift()]

    def describe(self) -> list[str]:
        lines = [f"~ {line}" for line in self.corrections()]
        lines += [f"? {line}" for line in self.drift()]
        for template in self.templates:
            for grant in template.waiting:
                lines.append(
                    f"… template {template.template} (department {template.department}): group "
                    f"{grant.group} gets {grant.role} once it exists in Coder ({grant.why})"
                )
        return lines

    def as_json(self) -> dict[str, Any]:
        by_department: dict[str, list[dict[str, Any]]] = {d.name: [] for d in self.departments}
        for template in self.templates:
            by_department.setdefault(template.department, []).append(template.as_json())
        return {
            "departments": [
                {
                    "name": d.name,
                    "template_patterns": d.patterns,
                    "isolated": d.isolated,
                    "strict": d.strict,
                    "grants": [
                        {"group": g.group, "role": g.role, "why": g.why} for g in d.grants.values()
                    ],
                    "templates": by_department.get(d.name, []),
                }
                for d in self.departments
            ],
            "unowned_templates": self.unowned,
            "warnings": self.warnings,
        }
