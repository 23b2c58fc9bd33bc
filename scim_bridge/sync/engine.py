"""The sync engine: where a membership change turns into Coder calls.

It reads the change journal (``store/journal.py``), works out which managed groups it
touches, plans the difference against Coder's state (``coder/plan.py``), applies it
(``coder/apply.py``), and deletes the journal records Coder now reflects. A record is deleted
only after its change reached Coder, so nothing acknowledged to a SCIM client is lost across
Coder outages, 429s or a crash; a full resync (every managed group) corrects drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import uuid
from collections.abc import AsyncIterator
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from ..coder.apply import apply_plan
from ..coder.client import CoderClient, CoderError, CoderGroup
from ..coder.mapping import MappingPlan, desired_mapping, mapping_diff
from ..coder.plan import (
    DesiredGroup,
    Link,
    Plan,
    PlanSettings,
    ScimUserInfo,
    UserIndex,
    compute_plan,
    linked_ids,
    needs_every_name,
)
from ..config import CoderSettings
from ..hierarchy.engine import Inheritance
from ..store.db import Database
from ..store.tables import (
    CODER_LINKS,
    EFFECTIVE,
    GROUPS,
    MAPPING_KEYS,
    SYNC_CHANGES,
    SYNC_LEASES,
    SYNC_STATUS,
    USERS,
)
from .links import read_links
from .templates import TemplateIsolation

log = logging.getLogger("scim_bridge.sync")
JOURNAL_BATCH = 10_000


class SyncBlocked(Exception):
    """Syncing would do harm; the message says what to change."""


@dataclass
class SyncReport:
    full: bool
    started: str
    kind: str = ""  # full, incremental, or templates (the template ACL check alone)
    finished: str = ""
    groups_in_scope: int = 0
    writes: int = 0
    changes: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    pending_users: dict[str, str] = field(default_factory=dict)
    journal_done: int = 0
    skipped: str = ""
    warnings: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)  # full resync with no change pending
    # Template isolation (sync/templates.py): kept apart from the membership outcome, so a
    # department misconfiguration neither blocks memberships nor makes them retry.
    templates_checked: int = 0
    template_corrections: list[str] = field(default_factory=list)
    template_drift: list[str] = field(default_factory=list)  # entries kept (not strict)
    template_errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.kind = self.kind or ("full" if self.full else "incremental")

    @property
    def ok(self) -> bool:
        """Memberships (and the mapping) reached Coder."""
        return not self.failures and not self.skipped and not self.held

    @property
    def clean(self) -> bool:
        """Everything, template ACLs included, is as configured."""
        return self.ok and not self.template_errors


@dataclass(frozen=True)
class Scope:
    """What one sync looks at: SCIM groups (all of them for a full resync) and users."""

    desired: dict[str, DesiredGroup]
    gone: set[str]
    users: dict[str, ScimUserInfo]
    links: dict[str, Link]
    journal_max: int | None


class SyncEngine:
    def __init__(self, database: Database, settings: CoderSettings, client: CoderClient):
        self.database = database
        self.settings = settings
        self.client = client
        self.holder = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self._index: UserIndex | None = None
        self.inheritance = Inheritance(database)  # mapping mode reads the tree
        self.templates = TemplateIsolation(
            database, client, settings.template_isolation, self.inheritance
        )
        self.plan_settings = PlanSettings(
            group_prefix=settings.group_prefix,
            match_users_by=settings.match_users_by,
            create_missing_users=settings.create_missing_users,
            suspend_deactivated_users=settings.suspend_deactivated_users,
            adopt_groups=frozenset(settings.adopt_groups),
            manage_members=settings.mode == "api",
        )

    # -- leadership -------------------------------------------------------------------

    async def acquire_lease(self) -> bool:
        """Take or renew the sync lease; False while another replica holds it."""
        now = datetime.now(UTC)
        async with self.database.transaction(write=True) as connection:
            result = await connection.execute(
                update(SYNC_LEASES)
                .where(
                    SYNC_LEASES.c.name == "sync",
                    or_(
                        SYNC_LEASES.c.holder == self.holder,
                        SYNC_LEASES.c.holder.is_(None),
                        SYNC_LEASES.c.expires_at < now,
                    ),
                )
                .values(
                    holder=self.holder,
                    expires_at=now + timedelta(seconds=self.settings.lease_seconds),
                )
            )
        return bool(result.rowcount)

    @contextlib.asynccontextmanager
    async def _lease_kept(self) -> AsyncIterator[None]:
        """Renew the lease while a run lasts: a first sync at 100k users takes many minutes,
        and another replica must not take over midway."""

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.settings.lease_seconds / 3)
                try:
                    if not await self.acquire_lease():
                        log.error("the sync lease was taken by another replica during a run")
                except Exception:  # a database hiccup: try again at the next tick
                    log.exception("renewing the sync lease failed")

        task = asyncio.get_running_loop().create_task(renew(), name="scim-bridge sync lease")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def release_lease(self) -> None:
        async with self.database.transaction(write=True) as connection:
            await connection.execute(
                update(SYNC_LEASES)
                .where(SYNC_LEASES.c.name == "sync", SYNC_LEASES.c.holder == self.holder)
                .values(holder=None, expires_at=None)
            )

    # -- one run ----------------------------------------------------------------------------

    async def pending_changes(self) -> int:
        async with self.database.transaction(write=False) as connection:
            return int(
                (
                    await connection.execute(select(func.count()).select_from(SYNC_CHANGES))
                ).scalar_one()
            )

    async def plan(self, *, full: bool) -> tuple[Plan, Scope, dict[str, str], str]:
        """What a sync would change (and the organization id), applying nothing."""
        scope = await self._scope(full=full)
        organization = await self.client.organization(self.settings.organization)
        await self._refuse_group_sync(organization.id)
        coder_groups = await self._coder_groups(organization.id, scope, full=full)
        # Mapping mode leaves members and users to Coder's login-time group sync.
        manages_members = self.plan_settings.manage_members
        index = await self._user_index(scope, full=full) if manages_members else UserIndex()
        plan = compute_plan(
            desired=scope.desired,
            gone=scope.gone,
            links=scope.links,
            coder_groups=coder_groups,
            users=scope.users,
            index=index,
            organization_id=organization.id,
            settings=self.plan_settings,
        )
        names = {u.id: u.user_name for u in scope.users.values()}
        return plan, scope, names, organization.id

    async def _coder_groups(
        self, organization_id: str, scope: Scope, *, full: bool
    ) -> list[CoderGroup]:
        """A full resync reads every group of the organization (all their members: 1.2 GB at
        100k users). An incremental sync reads only the groups in its scope, unless one must
        be created or renamed, which needs every name taken."""
        ids = None if full else linked_ids(scope.desired, scope.gone, scope.links)
        if ids is None:
            return await self.client.groups(organization_id)
        found = await self.client.groups_by_id(organization_id, ids) if ids else []
        if needs_every_name(scope.desired, scope.links, found, self.plan_settings):
            return await self.client.groups(organization_id)
        return found

    def failsafe(self, plan: Plan) -> list[str]:
        """Why the plan must wait for approval: it removes too many members at once."""
        reasons = []
        for change in plan.changes:
            size = change.current_size
            share = len(change.remove) / size if size else 0.0
            if size >= self.settings.failsafe_min_group_size and (
                share > self.settings.failsafe_max_removal_share
            ):
                reasons.append(
                    f"{change.name}: would remove {len(change.remove)} of its {size} members "
                    f"({share:.0%} > failsafe_max_removal_share "
                    f"{self.settings.failsafe_max_removal_share:.0%})"
                )
        if plan.removals > self.settings.failsafe_max_removals:
            reasons.append(
                f"would remove {plan.removals} memberships in all "
                f"(> failsafe_max_removals {self.settings.failsafe_max_removals})"
            )
        return reasons

    async def sync(self, *, full: bool = False, approve: bool = False) -> SyncReport:
        """Bring Coder up to date with the journal (or with everything, for ``full``).

        A plan the failsafe holds is not applied (the journal is kept) until ``approve``."""
        report = SyncReport(full=full, started=_now())
        if not await self.acquire_lease():
            report.skipped = "another replica holds the sync lease"
            return report
        async with self._lease_kept():
            await self._sync(report, full=full, approve=approve)
        report.finished = _now()
        await self._save_status(report)
        level = logging.INFO if report.clean else logging.WARNING
        log.log(level, "sync finished: %s", json.dumps(asdict(report))[:2000])
        return report

    async def check_templates(self) -> SyncReport:
        """The departments' template ACLs alone (the worker runs it between resyncs)."""
        report = SyncReport(full=False, started=_now(), kind="templates")
        if not await self.acquire_lease():
            report.skipped = "another replica holds the sync lease"
            return report
        async with self._lease_kept():
            try:
                organization = await self.client.organization(self.settings.organization)
                await self.templates.reconcile(organization.id, report, full=True)
            except CoderError as error:
                report.template_errors.append(f"template isolation: {error}")
        report.finished = _now()
        await self._save_status(report)
        return report

    async def _sync(self, report: SyncReport, *, full: bool, approve: bool) -> None:
        try:
            plan, scope, names, organization_id = await self.plan(full=full)
            report.groups_in_scope = len(scope.desired) + len(scope.gone)
            report.changes = plan.describe(names)
            if full and scope.journal_max is None:
                # Nothing was pending, so whatever a full resync changes was drift (edits made
                # in Coder by hand, or changes lost there).
                report.drift = list(report.changes)
            report.pending_users = {names.get(u, u): why for u, why in plan.pending.items()}
            report.held = [] if approve else self.failsafe(plan)
            if report.held:
                log.warning(
                    "sync held by the failsafe, approve with `scim-bridge sync --approve`: %s",
                    "; ".join(report.held),
                )
                # Isolation does not wait for the approval of membership removals.
                await self.templates.reconcile(organization_id, report, full=full)
                return
            applied = await apply_plan(
                self.client,
                plan,
                organization=organization_id,
                organization_id=organization_id,
                record_link=self._record_link,
                forget_link=self._forget_link,
            )
            report.writes = applied.writes
            report.failures = applied.failures
            mapped = True
            if self.settings.mode == "mapping":  # the groups exist now: map claims to them
                mapped = await self._sync_mapping(organization_id, report)
            if applied.ok and mapped and scope.journal_max is not None:
                report.journal_done = await self._forget_changes(scope.journal_max)
            # After the groups: a department's new groups have their Coder ids now.
            await self.templates.reconcile(organization_id, report, full=full)
        except (CoderError, SyncBlocked) as error:
            report.failures.append(str(error))

    # -- reading the bridge's side ------------------------------------------------------------

    async def _scope(self, *, full: bool) -> Scope:
        async with self.database.transaction(write=False) as connection:
            journal_max = (
                await connection.execute(select(func.max(SYNC_CHANGES.c.id)))
            ).scalar_one()
            links = await read_links(connection)
            existing = dict(
                (await connection.execute(select(GROUPS.c.id, GROUPS.c.display_name))).all()
            )
            touched_users: set[str] = set()
            if full:
                group_ids = set(existing) | set(links)
            else:
                group_ids, touched_users = await self._journal_scope(connection, journal_max)
            # Mapping mode plans groups only: their members are not read.
            in_scope = group_ids & set(existing) if self.plan_settings.manage_members else set()
            desired_members = await self._effective_members(connection, in_scope)
            desired = {
                gid: DesiredGroup(gid, existing[gid], frozenset(desired_members.get(gid, ())))
                for gid in group_ids
                if gid in existing
            }
            user_ids = set().union(*desired_members.values()) | touched_users
            if full and self.settings.suspend_deactivated_users:
                inactive = await connection.execute(
                    select(USERS.c.id).where(USERS.c.active.is_(False))
                )
                user_ids |= set(inactive.scalars())
            users = await self._users(connection, user_ids)
        gone = {gid for gid in group_ids if gid not in existing}
        return Scope(desired, gone, users, links, journal_max)

    async def _journal_scope(
        self, connection: AsyncConnection, journal_max: int | None
    ) -> tuple[set[str], set[str]]:
        if journal_max is None:
            return set(), set()
        rows = (
            await connection.execute(
                select(SYNC_CHANGES.c.kind, SYNC_CHANGES.c.ref_id).where(
                    SYNC_CHANGES.c.id <= journal_max
                )
            )
        ).all()
        groups = {ref for kind, ref in rows if kind == "group"}
        users = {ref for kind, ref in rows if kind == "user"}
        if users:
            inherited = await connection.execute(
                select(EFFECTIVE.c.group_id).where(EFFECTIVE.c.user_id.in_(sorted(users)))
            )
            groups |= set(inherited.scalars())
        return groups, users

    async def _effective_members(
        self, connection: AsyncConnection, group_ids: set[str]
    ) -> dict[str, set[str]]:
        members: dict[str, set[str]] = {gid: set() for gid in group_ids}
        ordered = sorted(group_ids)
        for start in range(0, len(ordered), 500):
            rows = await connection.execute(
                select(EFFECTIVE.c.group_id, EFFECTIVE.c.user_id)
                .join(USERS, USERS.c.id == EFFECTIVE.c.user_id)
                .where(
                    EFFECTIVE.c.group_id.in_(ordered[start : start + 500]),
                    USERS.c.active.is_(True),
                )
            )
            for group_id, user_id in rows:
                members[group_id].add(user_id)
        return members

    async def _users(
        self, connection: AsyncConnection, user_ids: set[str]
    ) -> dict[str, ScimUserInfo]:
        users: dict[str, ScimUserInfo] = {}
        ordered = sorted(user_ids)
        for start in range(0, len(ordered), 500):
            rows = await connection.execute(
                select(
                    USERS.c.id,
                    USERS.c.user_name,
                    USERS.c.display_name,
                    USERS.c.active,
                    USERS.c.data,
                ).where(USERS.c.id.in_(ordered[start : start + 500]))
            )
            for row in rows:
                users[row.id] = ScimUserInfo(
                    row.id,
                    row.user_name,
                    _email(json.loads(row.data)),
                    row.display_name,
                    bool(row.active),
                )
        return users

    # -- reading Coder's side ---------------------------------------------------------------------

    async def _refuse_group_sync(self, organization_id: str) -> None:
        """Contract §9: login-time group sync would wipe every membership API mode sets."""
        if self.settings.mode != "api":
            return
        settings = await self.client.group_sync_settings(organization_id)
        if settings.field:
            raise SyncBlocked(
                f"Coder organization {self.settings.organization} has IdP group sync enabled "
                f"(field {settings.field!r}): every OIDC login would reset the memberships the "
                "bridge sets. Clear the group sync field in that organization (Coder admin → "
                "Organization → IdP Sync, or unset CODER_OIDC_GROUP_FIELD for the default org), "
                "or run the bridge with coder.mode: mapping"
            )

    async def _user_index(self, scope: Scope, *, full: bool) -> UserIndex:
        """Coder users by email and username. A full resync reads every page once (contract
        §4.1) and keeps the index; an incremental sync looks up only the users the index
        does not know yet (new accounts), one search each."""
        if full or self._index is None:
            self._index = UserIndex([user async for user in self.client.users()])
            return self._index
        index = self._index
        for user in scope.users.values():
            if index.match(user, self.settings.match_users_by) is not None:
                continue
            needle = user.email if self.settings.match_users_by == "email" else user.user_name
            if needle:
                found = await self.client.search_users(needle.lower())
                for candidate in found:
                    index.add(candidate)
        return index

    # -- mapping mode (coder/mapping.py) -----------------------------------------------------

    async def plan_mapping(self, organization_id: str) -> MappingPlan:
        """The mapping the tree asks for, the PATCH that writes it, and what to warn about
        (above all: Coder applies no mapping while the organization's group sync is off)."""
        async with self.database.transaction(write=False) as connection:
            tree = await self.inheritance.tree(connection)
            links = await read_links(connection)
            written = set((await connection.execute(select(MAPPING_KEYS.c.given))).scalars())
        desired = desired_mapping(tree, links, self.settings.mapping_claim)
        stale = sorted(written - desired.keys)
        current = await self.client.group_sync_settings(organization_id)
        warnings = desired.warnings(self.settings.mapping_claim)
        if not current.field:
            warnings.insert(
                0,
                f"Coder organization {self.settings.organization} has no group sync field: "
                "Coder will never apply the mapping until it is set (Coder admin → "
                "Organization → IdP Sync → Group sync field, e.g. "
                f"{self.settings.group_sync_field!r}, the claim that carries the groups)",
            )
        names = {
            link.coder_group_id: link.coder_name
            for link in links.values()
            if link.coder_group_id is not None
        }
        diff = mapping_diff(desired.mapping, current.mapping, stale)
        return MappingPlan(desired, diff, warnings, names, stale)

    async def _sync_mapping(self, organization_id: str, report: SyncReport) -> bool:
        """Write the mapping diff; False (and a failure in the report) if Coder refused."""
        mapping = await self.plan_mapping(organization_id)
        report.warnings += mapping.warnings
        for warning in mapping.warnings:
            log.warning("%s", warning)
        report.changes += mapping.describe()
        if not mapping.diff.empty:
            # Recorded before Coder has them: a crash in between leaves a key we can empty
            # later, never one we forgot we wrote.
            await self._record_mapping_keys(add=mapping.desired.keys)
            report.writes += 1
            try:
                await self.client.patch_group_sync_mapping(
                    organization_id, mapping.diff.add, mapping.diff.remove
                )
            except CoderError as error:
                log.error("%s", error)
                report.failures.append(str(error))
                return False
        await self._record_mapping_keys(add=mapping.desired.keys, remove=set(mapping.stale))
        return True

    async def _record_mapping_keys(
        self, *, add: AbstractSet[str], remove: AbstractSet[str] = frozenset()
    ) -> None:
        async with self.database.transaction(write=True) as connection:
            written = set((await connection.execute(select(MAPPING_KEYS.c.given))).scalars())
            if remove & written:
                await connection.execute(
                    delete(MAPPING_KEYS).where(MAPPING_KEYS.c.given.in_(sorted(remove & written)))
                )
            if add - written:
                await connection.execute(
                    MAPPING_KEYS.insert(), [{"given": given} for given in sorted(add - written)]
                )

    # -- writing the bridge's side ----------------------------------------------------------------

    async def _record_link(self, link: Link) -> None:
        async with self.database.transaction(write=True) as connection:
            await connection.execute(
                delete(CODER_LINKS).where(CODER_LINKS.c.scim_group_id == link.scim_group_id)
            )
            await connection.execute(
                CODER_LINKS.insert().values(
                    scim_group_id=link.scim_group_id,
                    coder_group_id=link.coder_group_id,
                    coder_name=link.coder_name,
                    owned=link.owned,
                )
            )

    async def _forget_link(self, scim_group_id: str) -> None:
        async with self.database.transaction(write=True) as connection:
            await connection.execute(
                delete(CODER_LINKS).where(CODER_LINKS.c.scim_group_id == scim_group_id)
            )

    async def _forget_changes(self, journal_max: int) -> int:
        async with self.database.transaction(write=True) as connection:
            result = await connection.execute(
                delete(SYNC_CHANGES).where(SYNC_CHANGES.c.id <= journal_max)
            )
        return int(result.rowcount or 0)

    async def _save_status(self, report: SyncReport) -> None:
        name = report.kind
        body = json.dumps(asdict(report))
        async with self.database.transaction(write=True) as connection:
            await connection.execute(delete(SYNC_STATUS).where(SYNC_STATUS.c.name == name))
            await connection.execute(
                SYNC_STATUS.insert().values(name=name, report=body, updated=datetime.now(UTC))
            )

    async def status(self) -> dict[str, Any]:
        async with self.database.transaction(write=False) as connection:
            rows = (await connection.execute(select(SYNC_STATUS))).all()
            pending = (
                await connection.execute(select(func.count()).select_from(SYNC_CHANGES))
            ).scalar_one()
        return {
            "pending_changes": int(pending),
            "last_runs": {row.name: json.loads(row.report) for row in rows},
        }


def _email(data: dict[str, Any]) -> str | None:
    """The address Coder users are matched by: primary, else work, else the first."""
    emails = [e for e in data.get("emails") or [] if isinstance(e, dict) and e.get("value")]
    primary = [e for e in emails if e.get("primary") is True]
    work = [e for e in emails if str(e.get("type", "")).lower() == "work"]
    chosen = primary or work or emails
    return str(chosen[0]["value"]) if chosen else None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def build_engine(database: Database, settings: CoderSettings) -> SyncEngine:
    """The engine of a configured Coder (``coder.url`` and ``coder.token``)."""
    if not settings.url or not settings.token:
        raise SyncBlocked(
            "no Coder is configured: set coder.url and SCIM_BRIDGE_CODER__TOKEN (docs/coder.md)"
        )
    client = CoderClient(
        settings.url,
        settings.token,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        timeout_seconds=settings.http_timeout_seconds,
    )
    return SyncEngine(database, settings, client)
