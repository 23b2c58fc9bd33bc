"""Where the departments' template ACLs turn into Coder calls (contract §7).

Reads the tree and the bridge's links, lists the organization's templates, reads the ACL of
each template a department owns, and PATCHes the entries that differ (``coder/acl.py``
decides which). Department template admins hold ``admin`` on their templates and so can edit
those ACLs: each check re-asserts them and reports every correction.

A full resync and the periodic template check always read the ACLs; an incremental sync does
only when what the ACLs depend on changed (a department's groups got their Coder group, the
tree above a department moved), because nothing a SCIM write does can change them otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from ..coder.acl import (
    Department,
    TemplateAclPlan,
    TemplateIsolationError,
    assign_templates,
    plan_template_acl,
    resolve_departments,
)
from ..coder.client import CoderClient, CoderError, TemplateAcl
from ..config import TemplateIsolationSettings
from ..hierarchy.engine import Inheritance
from ..store.db import Database
from .links import read_links

log = logging.getLogger("scim_bridge.sync")
ACL_READS_AT_ONCE = 4

TOKEN_HINT = (
    "the bridge's Coder token needs the template-admin role (or organization-template-admin "
    "in this organization) to read and write template ACLs (docs/template-isolation.md)"
)


class TemplateReport(Protocol):
    """The parts of a sync report a template check fills in."""

    writes: int
    warnings: list[str]
    template_corrections: list[str]
    template_drift: list[str]
    template_errors: list[str]
    templates_checked: int


class TemplateIsolation:
    def __init__(
        self,
        database: Database,
        client: CoderClient,
        settings: TemplateIsolationSettings,
        inheritance: Inheritance,
    ):
        self.database = database
        self.client = client
        self.settings = settings
        self.inheritance = inheritance
        self._checked: tuple[Any, ...] | None = None  # what the last complete check applied

    @property
    def enabled(self) -> bool:
        return bool(self.settings.departments)

    async def plan(self, organization_id: str) -> TemplateAclPlan:
        """Every owned template's ACL against what its department asks for, applying nothing.

        Raises :class:`TemplateIsolationError` for a configuration that does not fit (nothing
        may be applied then) and :class:`CoderError` when Coder refuses a read."""
        departments, managed = await self._departments()
        templates = [t for t in await self.client.templates(organization_id) if not t.deleted]
        owner, warnings = assign_templates(departments, templates)
        if warnings and not templates:
            warnings.append(f"Coder lists no template to the bridge: {TOKEN_HINT}")
        plan = TemplateAclPlan(
            warnings=warnings,
            departments=departments,
            unowned=sorted(t.name for t in templates if t.id not in owner),
            fingerprint=_fingerprint(departments, managed),
        )
        owned = sorted((t for t in templates if t.id in owner), key=lambda t: t.name)
        # A few reads at a time: each ACL is its own path, and Coder limits per path (§1.4).
        gate = asyncio.Semaphore(ACL_READS_AT_ONCE)

        async def read(template_id: str) -> TemplateAcl | None:
            async with gate:
                try:
                    return await self.client.template_acl(template_id)
                except CoderError as error:
                    if error.status == 404 and await self._deleted(organization_id, template_id):
                        return None  # deleted since the list was read: nothing to keep
                    raise

        found = await asyncio.gather(*(read(t.id) for t in owned), return_exceptions=True)
        for outcome in found:  # every read has ended: none is left running on an error
            if isinstance(outcome, BaseException):
                raise outcome
        plan.templates = [
            plan_template_acl(template, owner[template.id], acl, managed, organization_id)
            for template, acl in zip(owned, found, strict=True)
            if isinstance(acl, TemplateAcl)
        ]
        return plan

    async def _deleted(self, organization_id: str, template_id: str) -> bool:
        """Whether the template is gone (a 404 can also mean the token may not read ACLs)."""
        templates = await self.client.templates(organization_id)
        return all(t.id != template_id or t.deleted for t in templates)

    async def reconcile(self, organization_id: str, report: TemplateReport, *, full: bool) -> None:
        """Check (and correct) the ACLs; problems go to ``report.template_errors``."""
        if not self.enabled:
            return
        try:
            if not full and await self._unchanged():
                return
            plan = await self.plan(organization_id)
        except TemplateIsolationError as error:
            message = f"template isolation: nothing applied: {error}"
            log.error("%s", message)
            report.template_errors.append(message)
            return
        except CoderError as error:
            hint = f" ({TOKEN_HINT})" if error.status in (403, 404) else ""
            report.template_errors.append(f"template isolation: {error}{hint}")
            log.error("template isolation: %s%s", error, hint)
            return
        report.templates_checked += len(plan.templates)
        report.warnings += plan.warnings
        drift = plan.drift()
        report.template_drift += drift
        failed = False
        for change in plan.changes:
            report.writes += 1
            try:
                await self.client.patch_template_acl(
                    change.template_id,
                    group_perms=change.group_perms,
                    user_perms=change.user_perms,
                )
            except CoderError as error:
                hint = f" ({TOKEN_HINT})" if error.status in (403, 404) else ""
                report.template_errors.append(
                    f"template {change.template} (department {change.department}): {error}{hint}"
                )
                log.error("template %s: %s%s", change.template, error, hint)
                failed = True
                continue
            for line in change.corrections():
                log.warning("template ACL corrected: %s", line)
                report.template_corrections.append(line)
        for line in drift:
            log.info("template ACL entry kept: %s", line)
        # A failed write makes the next sync of any kind check again.
        self._checked = None if failed else plan.fingerprint

    async def _departments(self) -> tuple[list[Department], dict[str, str]]:
        async with self.database.transaction(write=False) as connection:
            tree = await self.inheritance.tree(connection)
            links = await read_links(connection)
        return resolve_departments(self.settings, tree, links)

    async def _unchanged(self) -> bool:
        """True when the departments' grants are what the last complete check applied."""
        if self._checked is None:
            return False
        try:
            departments, managed = await self._departments()
        except TemplateIsolationError:
            return False
        return _fingerprint(departments, managed) == self._checked


def _fingerprint(departments: list[Department], managed: dict[str, str]) -> tuple[Any, ...]:
    return (tuple(d.fingerprint() for d in departments), tuple(sorted(managed)))
