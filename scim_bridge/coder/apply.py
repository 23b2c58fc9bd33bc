"""Carry out a :class:`~scim_bridge.coder.plan.Plan` against Coder.

Order matters for Coder's checks (contract §3.3): users join the organization before they are
added to groups; a group is created (and its link recorded) before its members are set; one
PATCH per group carries both its additions and its removals.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from .client import CoderClient, CoderError
from .plan import Link, Plan

log = logging.getLogger("scim_bridge.sync")
T = TypeVar("T")

LinkWriter = Callable[[Link], Awaitable[None]]
LinkRemover = Callable[[str], Awaitable[None]]


@dataclass
class ApplyReport:
    writes: int = 0
    failures: list[str] = field(default_factory=list)
    failed_groups: set[str] = field(default_factory=set)  # SCIM group ids to retry

    @property
    def ok(self) -> bool:
        return not self.failures


async def apply_plan(
    client: CoderClient,
    plan: Plan,
    *,
    organization: str,
    organization_id: str,
    record_link: LinkWriter,
    forget_link: LinkRemover,
) -> ApplyReport:
    """Apply every change; a failed group is reported (with Coder's message) and retried by
    the next run, the others still go through."""
    report = ApplyReport()
    coder_ids = dict(plan.coder_ids)
    for user_id in plan.org_joins:
        await _attempt(report, None, client.add_organization_member(organization, user_id))
    for user in plan.user_creates:
        _, created = await _attempt(
            report,
            None,
            client.create_user(
                email=user.email or "",
                username=_username(user.user_name, user.email),
                name=(user.display_name or "")[:128].strip(),
                organization_id=organization_id,
                login_type="oidc",
            ),
        )
        if created is not None:
            coder_ids[user.id] = created.id
    for link in plan.adopted:
        await record_link(link)
    for change in plan.changes:
        if change.delete:
            deleted, _ = await _attempt(
                report, change.scim_id, client.delete_group(str(change.coder_id))
            )
            if deleted:
                await forget_link(str(change.scim_id))
            continue
        group_id = change.coder_id
        if change.create:
            assert change.scim_id is not None
            # Recorded before Coder answers: a crash in between is adopted by name next time.
            await record_link(Link(change.scim_id, None, change.name))
            _, created_group = await _attempt(
                report,
                change.scim_id,
                client.create_group(organization, change.name, change.display_name),
            )
            if created_group is None:
                continue
            group_id = created_group.id
            await record_link(Link(change.scim_id, group_id, change.name))
        add = sorted({coder_ids[u] for u in change.add if u in coder_ids})
        rename = change.rename and not change.create
        if not (add or change.remove or rename):
            continue
        _, patched = await _attempt(
            report,
            change.scim_id,
            client.patch_group(
                str(group_id),
                add_users=add,
                remove_users=change.remove,
                name=change.name if rename else None,
                display_name=change.display_name if rename else None,
            ),
        )
        if patched is not None and rename and change.scim_id is not None:
            await record_link(Link(change.scim_id, patched.id, patched.name))
    for user_id in plan.suspends:
        await _attempt(report, None, client.suspend_user(user_id))
    return report


async def _attempt(
    report: ApplyReport, scim_group: str | None, call: Awaitable[T]
) -> tuple[bool, T | None]:
    """(succeeded, result) of one write; a failure is reported, not raised."""
    report.writes += 1
    try:
        return True, await call
    except CoderError as error:
        log.error("%s", error)
        report.failures.append(str(error))
        if scim_group is not None:
            report.failed_groups.add(scim_group)
        return False, None


def _username(user_name: str, email: str | None) -> str:
    """A valid Coder username (contract §6: ``UsernameFrom``-like): keep a valid userName,
    else the part of the e-mail before the @, with what Coder refuses removed."""
    valid = re.compile(r"^[a-zA-Z0-9]+(?:-[a-zA-Z0-9]+)*$")
    for candidate in (user_name, user_name.split("@")[0], (email or "").split("@")[0]):
        cleaned = re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9-]", "", candidate)).strip("-")[:32]
        if valid.match(cleaned) and cleaned.lower() not in {"new", "create"}:
            return cleaned
    return "user"
