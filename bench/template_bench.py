"""Benchmark of department template isolation (``scim_bridge/sync/templates.py``): the Coder
calls and wall time of a template ACL check, and what isolation adds to an incremental sync.

One run measures one backend (``--backend``), in child processes (as bench/sync_bench.py):

1. preloads a tenant whose groups are already in Coder: a parent group ``Engineering`` with
   ``--departments`` department groups under it (SCIM group-in-group edges), each with its
   template admin group as a child, ``--users`` users spread over the departments (the first
   ``--admins`` of each also in its admin group), and ``--other-groups`` other groups of
   ``--other-members`` random users each; one ``coder_group_link`` row per group, so the links
   table is as large as a real tenant's; ``effective_member`` filled by the storage's own
   ``Inheritance.recompute`` (``bench.preload.derive_tables``);
2. starts the Coder double (``scim_bridge.coderdouble``, ``FastCoderState`` of
   bench/sync_bench.py) under uvicorn on 127.0.0.1 (real HTTP), rate limit off, holding the
   same users and groups (group names as the bridge makes them, members = the SCIM groups'
   effective members), ``--templates`` templates per department (``d01-app-01`` …, each
   department owns ``d01-*``) and ``--unowned`` templates of no department, all created as
   Coder creates them (Everyone may ``use``);
3. builds two engines with ``build_engine`` (``rate_limit_per_minute: 0``): one with every
   department configured (``isolated: true``), one without ``template_isolation``; checks the
   preload with a full sync of the second (must write nothing), then measures:

   - the first ``SyncEngine.check_templates()``: every owned template gets its admin group
     (``admin``) and department group (``use``), and loses Everyone;
   - no-op checks (median of ``--noop-runs``): nothing to change, 0 writes;
   - checks after ``--grants`` cross-department grants (another department's admin group
     given ``admin``) were written straight into the double's state (median of
     ``--grant-runs``): exactly that many templates patched;
   - ``TemplateIsolation._unchanged()`` (median of ``--unchanged-runs``), split into its
     database reads (tree + links), ``resolve_departments`` and the fingerprint;
   - one SCIM member add (``SqlScimStorage.get`` + ``update``, journal as in production)
     followed by one incremental ``engine.sync(full=False)``, alternately on the engine with
     isolation and on the one without (median of ``--sync-runs`` each);
   - optionally (``--open-check``) one check with every department *not* isolated while
     Everyone is back on every template: what each periodic check costs a department that
     keeps Everyone.

Calls are counted by the double (``CoderState.calls``) and timed on the bridge's side
(``bench.sync_bench.Recorder``). Coder's default limit (512 requests per minute, keyed by
user and URL path, coder-contract.md §1.4) is applied to the call trace, not waited out.

Example (about half a minute; the default run takes about 2 minutes)::

    python -m bench.template_bench --backend sqlite --other-groups 1000 --users 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import create_engine, func, insert, select, text

from bench import markdown
from scim_bridge.coder.acl import Department, assign_templates, resolve_departments
from scim_bridge.coder.client import RatePacer, Template
from scim_bridge.coder.naming import display_name, slug
from scim_bridge.coderdouble import DoubleConfig, Group, create_coder_double
from scim_bridge.coderdouble.app import API_PREFIX
from scim_bridge.coderdouble.faults import is_write
from scim_bridge.config import CoderSettings, TemplateIsolationSettings
from scim_bridge.store.db import Database, sync_url
from scim_bridge.store.flatten import fold
from scim_bridge.store.tables import CODER_LINKS, EFFECTIVE, GROUPS, MEMBERS, USERS
from scim_bridge.sync.engine import SyncEngine, _email, build_engine
from scim_bridge.sync.links import read_links
from scim_bridge.sync.templates import ACL_READS_AT_ONCE, _fingerprint

from .hierarchy_bench import (
    BACKENDS,
    CORE_GROUP,
    CORE_USER,
    LABELS,
    PG_ADMIN_URL,
    Stopwatch,
    _ids,
    environment,
    in_child,
    scratch_database,
)
from .preload import derive_tables
from .sync_bench import (
    BRIDGE_ROLES,
    CODER_RATE_LIMIT,
    CODER_RATE_WINDOW,
    Call,
    FastCoderState,
    LoopbackServer,
    Recorder,
    ScimSide,
    TimedApp,
    load_double_users,
    log,
    rate_floor,
)

SECTION = "## Template isolation"
BEGIN = "<!-- template_bench:begin (generated by python -m bench.template_bench) -->"
END = "<!-- template_bench:end -->"
BATCH = 5000
KINDS = {
    "GET /organizations/{organization}": "organization lookup",
    "GET /organizations/{organization}/templates": "template list",
    "GET /templates/{template}/acl": "ACL GET",
    "PATCH /templates/{template}/acl": "ACL PATCH",
}
PHASES = {  # (object, method): what it stands for
    ("templates", "_departments"): "tree + links from the database, resolve_departments",
    ("client", "organization"): "organization lookup (call + parsing)",
    ("client", "templates"): "template list (call + parsing)",
    ("client", "template_acl"): "ACL GETs (calls + parsing)",
    ("client", "patch_template_acl"): "ACL PATCHes (calls)",
    ("engine", "_save_status"): "save the report (`_save_status`)",
}


# -- the tenant ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    departments: int
    templates: int  # per department
    unowned: int
    other_groups: int
    other_members: int
    users: int
    admins: int
    seed: int

    @property
    def width(self) -> int:
        return max(2, len(str(self.departments)))

    def department(self, d: int) -> str:
        return f"d{d + 1:0{self.width}d}"

    @property
    def groups(self) -> int:
        return 1 + 2 * self.departments + self.other_groups

    def group_name(self, g: int) -> str:
        """Group 0 is the parent, 1..D the departments, D+1..2D their admin groups."""
        if g == 0:
            return "Engineering"
        if g <= self.departments:
            return f"Department {g:0{self.width}d}"
        if g <= 2 * self.departments:
            return f"Department {g - self.departments:0{self.width}d} template admins"
        return f"Team {g - 2 * self.departments:05d}"

    def user_department(self, i: int) -> int:
        return i % self.departments

    def template_names(self, d: int) -> list[str]:
        return [f"{self.department(d)}-app-{k + 1:02d}" for k in range(self.templates)]

    def isolation(self, *, isolated: bool = True) -> TemplateIsolationSettings:
        return TemplateIsolationSettings.model_validate(
            {
                "departments": [
                    {
                        "name": self.department(d),
                        "group": self.group_name(1 + d),
                        "admin_group": self.group_name(1 + self.departments + d),
                        "templates": [f"{self.department(d)}-*"],
                        "isolated": isolated,
                    }
                    for d in range(self.departments)
                ]
            }
        )


def ids(scenario: Scenario) -> tuple[list[str], list[str], list[str]]:
    """SCIM user ids, SCIM group ids and Coder group ids (derived from the seed)."""
    return (
        _ids(scenario.seed, "user", scenario.users),
        _ids(scenario.seed, "group", scenario.groups),
        _ids(scenario.seed, "coder-group", scenario.groups),
    )


def preload(url: str, scenario: Scenario) -> dict[str, Any]:
    """Bulk-insert the tenant (users, groups, edges, memberships, links) into the migrated,
    empty database at ``url``, then fill effective_member with the storage's recompute."""
    started = time.perf_counter()
    user_ids, group_ids, coder_ids = ids(scenario)
    rng = random.Random(scenario.seed)
    stamp = datetime(2026, 1, 1, tzinfo=UTC)
    departments = scenario.departments

    def user_rows() -> Iterator[dict[str, Any]]:
        for i, user_id in enumerate(user_ids):
            name = f"user{i:06d}@example.com"
            data = {
                "schemas": [CORE_USER],
                "userName": name,
                "externalId": f"ext-{i:06d}",
                "displayName": f"User {i}",
                "emails": [{"value": name, "type": "work", "primary": True}],
                "active": True,
            }
            yield {
                "id": user_id,
                "user_name": name,
                "user_name_key": fold(name, False),
                "external_id": f"ext-{i:06d}",
                "active": True,
                "data": json.dumps(data, separators=(",", ":")),
                "version": 1,
                "created": stamp,
                "last_modified": stamp,
            }

    def group_rows() -> Iterator[dict[str, Any]]:
        for g, group_id in enumerate(group_ids):
            name = scenario.group_name(g)
            data = {"schemas": [CORE_GROUP], "displayName": name, "externalId": f"gext-{g:05d}"}
            yield {
                "id": group_id,
                "display_name": name,
                "display_name_key": fold(name, False),
                "external_id": f"gext-{g:05d}",
                "data": json.dumps(data, separators=(",", ":")),
                "version": 1,
                "created": stamp,
                "last_modified": stamp,
            }

    def member_rows() -> Iterator[dict[str, Any]]:
        for d in range(departments):  # the tree: parent > department > its admin group
            yield {"group_id": group_ids[0], "member_id": group_ids[1 + d], "member_type": "Group"}
            yield {
                "group_id": group_ids[1 + d],
                "member_id": group_ids[1 + departments + d],
                "member_type": "Group",
            }
        seen: Counter[int] = Counter()
        for i, user_id in enumerate(user_ids):
            d = scenario.user_department(i)
            yield {"group_id": group_ids[1 + d], "member_id": user_id, "member_type": "User"}
            seen[d] += 1
            if seen[d] <= scenario.admins:
                admin_group = group_ids[1 + departments + d]
                yield {"group_id": admin_group, "member_id": user_id, "member_type": "User"}
        count = min(scenario.other_members, scenario.users)
        for g in range(1 + 2 * departments, scenario.groups):
            for i in rng.sample(range(scenario.users), count):
                yield {"group_id": group_ids[g], "member_id": user_ids[i], "member_type": "User"}

    def link_rows() -> Iterator[dict[str, Any]]:
        for g, group_id in enumerate(group_ids):
            yield {
                "scim_group_id": group_id,
                "coder_group_id": coder_ids[g],
                "coder_name": slug(scenario.group_name(g)),
                "owned": True,
            }

    engine = create_engine(sync_url(url))
    counts: Counter[str] = Counter()
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA synchronous=OFF")
        many = connection.execution_options(insertmanyvalues_page_size=BATCH)
        tables: list[tuple[str, sqlalchemy.Table, Iterator[dict[str, Any]]]] = [
            ("users", USERS, user_rows()),
            ("groups", GROUPS, group_rows()),
            ("memberships", MEMBERS, member_rows()),
            ("links", CODER_LINKS, link_rows()),
        ]
        for label, table, rows in tables:
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= BATCH:
                    many.execute(insert(table), batch)
                    counts[label] += len(batch)
                    batch = []
            if batch:
                many.execute(insert(table), batch)
                counts[label] += len(batch)
    engine.dispose()
    loaded = time.perf_counter()
    derive_tables(url)
    if not url.startswith("sqlite"):
        engine = create_engine(sync_url(url))
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("ANALYZE")
        engine.dispose()
    return {
        "counts": dict(counts),
        "preload_seconds": loaded - started,
        "derive_seconds": time.perf_counter() - loaded,
    }


# -- the double ------------------------------------------------------------------------------


async def load_double(
    database: Database, state: FastCoderState, scenario: Scenario
) -> dict[str, Any]:
    """The users (``bench.sync_bench.load_double_users``), the linked groups with their SCIM
    groups' effective active members, and the templates, written straight into the state."""
    users = await load_double_users(database, state)
    _, group_ids, coder_ids = ids(scenario)
    async with database.transaction(write=False) as connection:
        emails = {
            user_id: (_email(json.loads(data)) or "").lower()
            for user_id, data in await connection.execute(
                select(USERS.c.id, USERS.c.data).where(USERS.c.active.is_(True))
            )
        }
        effective = (
            await connection.execute(select(EFFECTIVE.c.group_id, EFFECTIVE.c.user_id))
        ).all()
    with state.lock:
        by_email = {u.email.lower(): u.id for u in state.users.values()}
        members: dict[str, list[uuid.UUID]] = defaultdict(list)
        for group_id, user_id in effective:
            if user_id in emails:
                members[group_id].append(by_email[emails[user_id]])
        organization = state.default_org
        for g, group_id in enumerate(group_ids):
            name = scenario.group_name(g)
            group = Group(uuid.UUID(coder_ids[g]), organization.id, slug(name), display_name(name))
            group.members = dict.fromkeys(sorted(members[group_id], key=str))
            state.groups[group.id] = group
    for d in range(scenario.departments):
        for name in scenario.template_names(d):
            state.create_template(organization, name)
    for k in range(scenario.unowned):
        state.create_template(organization, f"shared-{k + 1:02d}")
    return {
        "coder_users": users,
        "coder_groups": len(group_ids),
        "coder_memberships": sum(len(m) for m in members.values()),
        "templates": len(state.templates),
    }


def expected_acls(state: FastCoderState, scenario: Scenario) -> dict[uuid.UUID, dict[str, str]]:
    """What every template's group ACL should be after a check (unowned: untouched)."""
    _, _, coder_ids = ids(scenario)
    owner = {name: d for d in range(scenario.departments) for name in scenario.template_names(d)}
    wanted: dict[uuid.UUID, dict[str, str]] = {}
    with state.lock:
        everyone = str(state.default_org.id)
        for template in state.templates.values():
            d = owner.get(template.name)
            if d is None:
                wanted[template.id] = {everyone: "use"}
            else:
                wanted[template.id] = {
                    coder_ids[1 + scenario.departments + d]: "admin",
                    coder_ids[1 + d]: "use",
                }
    return wanted


def acl_mismatches(state: FastCoderState, scenario: Scenario) -> int:
    """Templates whose ACL is not what the departments ask for (user ACLs must be empty)."""
    wanted = expected_acls(state, scenario)
    with state.lock:
        return sum(
            1
            for template in state.templates.values()
            if template.group_acl != wanted[template.id] or template.user_acl
        )


def cross_grants(state: FastCoderState, scenario: Scenario, count: int, seed: str) -> int:
    """Give ``count`` owned templates (seeded pick) another department's admin group as
    ``admin``, straight in the state (as a department admin's own ACL edit would)."""
    _, _, coder_ids = ids(scenario)
    rng = random.Random(seed)
    owned = [(d, name) for d in range(scenario.departments) for name in scenario.template_names(d)]
    by_name = {t.name: t for t in state.templates.values()}
    chosen = rng.sample(owned, min(count, len(owned)))
    with state.lock:
        for d, name in chosen:
            other = (d + 1 + rng.randrange(scenario.departments - 1)) % scenario.departments
            by_name[name].group_acl[coder_ids[1 + scenario.departments + other]] = "admin"
    return len(chosen)


def set_everyone(state: FastCoderState, role: str | None) -> None:
    """Put Everyone on (``use``) or off (None) every template, straight in the state."""
    with state.lock:
        everyone = str(state.default_org.id)
        for template in state.templates.values():
            if role is None:
                template.group_acl.pop(everyone, None)
            else:
                template.group_acl[everyone] = role


# -- measuring ---------------------------------------------------------------------------------


class DroppedLog(logging.Handler):
    """Formats every record of ``scim_bridge`` at INFO and up, as a deployment's log handler
    would, and drops it (a first check logs one WARNING per correction)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.format(record)
        self.records += 1


def _key(method: str, template: str) -> str:
    return f"{method} {template.removeprefix(API_PREFIX)}"


class Bench:
    """The double, the engines and the instruments."""

    def __init__(
        self,
        state: FastCoderState,
        app: TimedApp,
        isolated: SyncEngine,
        plain: SyncEngine,
    ) -> None:
        self.state = state
        self.app = app
        self.isolated = isolated
        self.plain = plain
        self.recorders = {id(e): Recorder(e.client) for e in (isolated, plain)}
        owners = {"templates": isolated.templates, "client": isolated.client, "engine": isolated}
        self.watches = {(owner, name): Stopwatch(owners[owner], name) for owner, name in PHASES}

    def reset(self) -> None:
        self.state.calls.reset()
        self.app.take()
        for recorder in self.recorders.values():
            recorder.take()
        for watch in self.watches.values():
            watch.take()

    async def figures(self, engine: SyncEngine, seconds: float) -> dict[str, Any]:
        """What the double counted and the bridge sent since :meth:`reset`."""
        trace = self.recorders[id(engine)].take()
        double_seconds, double_requests = self.app.take()
        calls = {
            _key(method, template): n
            for (method, template), n in sorted(self.state.calls.snapshot().items())
        }
        return {
            "seconds": seconds,
            "calls": calls,
            "reads": sum(n for k, n in calls.items() if not is_write(k.split(" ", 1)[0])),
            "writes": sum(n for k, n in calls.items() if is_write(k.split(" ", 1)[0])),
            "sent": len(trace),
            "http_seconds": sum(c.finished - c.started for c in trace),
            "bytes": sum(c.size for c in trace),
            "double_seconds": double_seconds,
            "double_requests": double_requests,
            "phases": {
                f"{owner}.{name}": sum(w.take()) for (owner, name), w in self.watches.items()
            },
            "rate": await rate_figures(trace, seconds),
        }

    async def check(self, engine: SyncEngine, label: str) -> dict[str, Any]:
        """One ``check_templates()`` (the lease released afterwards, untimed)."""
        self.reset()
        started = time.perf_counter()
        report = await engine.check_templates()
        seconds = time.perf_counter() - started
        await engine.release_lease()
        run = await self.figures(engine, seconds)
        run |= {
            "label": label,
            "templates_checked": report.templates_checked,
            "corrections": len(report.template_corrections),
            "drift": len(report.template_drift),
            "errors": report.template_errors[:3],
            "warnings": report.warnings[:3],
            "report_writes": report.writes,
            "skipped": report.skipped,
        }
        log(
            f"  {label}: {seconds:.2f} s, {run['reads']} reads + {run['writes']} writes, "
            f"{run['corrections']} corrections, {run['bytes'] / 1e6:.1f} MB"
            + (f", errors {run['errors']}" if run["errors"] else "")
        )
        return run

    async def sync(self, engine: SyncEngine, label: str, *, full: bool) -> dict[str, Any]:
        self.reset()
        started = time.perf_counter()
        report = await engine.sync(full=full)
        seconds = time.perf_counter() - started
        await engine.release_lease()
        run = await self.figures(engine, seconds)
        run |= {
            "label": label,
            "ok": report.ok,
            "failures": report.failures[:3],
            "skipped": report.skipped,
            "groups_in_scope": report.groups_in_scope,
            "template_errors": report.template_errors[:3],
        }
        return run


async def rate_figures(trace: list[Call], seconds: float) -> dict[str, Any]:
    """The calls per path pattern, and what Coder's limit (user + URL path, §1.4) would
    make of them: ``bench.sync_bench.rate_floor`` on the trace, plus the same under two
    other keys for comparison (the route pattern, and the user alone)."""
    per_path = Counter(c.path for c in trace)
    patterns: dict[str, dict[str, int]] = {}
    for call in trace:
        key = f"{call.method} {call.template}"
        row = patterns.setdefault(key, {"calls": 0, "paths": 0, "max_per_path": 0})
        row["calls"] += 1
    for key, row in patterns.items():
        paths = {c.path for c in trace if f"{c.method} {c.template}" == key}
        row["paths"] = len(paths)
        row["max_per_path"] = max(per_path[p] for p in paths)
    floor, path, path_calls = rate_floor(trace, CODER_RATE_LIMIT, CODER_RATE_WINDOW)
    by_pattern = Counter(c.template for c in trace)  # GET and PATCH of one pattern together
    busiest = max(by_pattern.values(), default=0)

    def windows(n: int) -> float:
        return (math.ceil(n / CODER_RATE_LIMIT) - 1) * CODER_RATE_WINDOW if n else 0.0

    return {
        "patterns": patterns,
        "distinct_paths": len(per_path),
        "floor_seconds": floor,
        "floor_path": path,
        "floor_path_calls": path_calls,
        "pattern_floor_seconds": windows(busiest),
        "user_floor_seconds": windows(len(trace)),
        "paced": await pacer_replay(trace, seconds),
    }


async def pacer_replay(trace: list[Call], seconds: float) -> dict[str, float]:
    """The measured run replayed through the bridge's own ``RatePacer`` at 512/min on a
    virtual clock: every call keeps its measured duration and the bridge's work before it."""
    if not trace:
        return {"seconds": seconds, "waited": 0.0}
    now = 0.0
    waited = 0.0

    def clock() -> float:
        return now

    async def sleep(delay: float) -> None:
        nonlocal now, waited
        now += delay
        waited += delay

    pacer = RatePacer(CODER_RATE_LIMIT, clock, sleep)  # its sleep only moves the clock
    previous = trace[0].started
    for call in trace:
        now += call.started - previous
        await pacer.wait(call.path)
        now += call.finished - call.started
        previous = call.finished
    first, last = trace[0].started, trace[-1].finished
    return {"seconds": seconds - (last - first) + now, "waited": waited}


async def unchanged_breakdown(engine: SyncEngine, runs: int) -> dict[str, Any]:
    """``TemplateIsolation._unchanged()`` and its parts, each timed ``runs`` times."""
    isolation = engine.templates
    figures: dict[str, Any] = {
        "total": [],
        "results": [],
        "db": [],
        "tree": [],
        "links_read": [],
        "resolve": [],
        "print": [],
    }
    for _ in range(runs):
        started = time.perf_counter()
        figures["results"].append(await isolation._unchanged())
        figures["total"].append(time.perf_counter() - started)
    for _ in range(runs):
        started = time.perf_counter()
        async with engine.database.transaction(write=False) as connection:
            tree = await isolation.inheritance.tree(connection)
            read = time.perf_counter()
            links = await read_links(connection)
            figures["links_read"].append(time.perf_counter() - read)
            figures["tree"].append(read - started)
        middle = time.perf_counter()
        departments, managed = resolve_departments(isolation.settings, tree, links)
        resolved = time.perf_counter()
        _fingerprint(departments, managed)
        figures["db"].append(middle - started)
        figures["resolve"].append(resolved - middle)
        figures["print"].append(time.perf_counter() - resolved)
    figures["links"] = len(links)
    figures["managed"] = len(managed)
    return figures


def rules_scaling(scenario: Scenario, factors: tuple[int, ...] = (1, 2, 4, 8)) -> list[Any]:
    """``assign_templates`` (which template belongs to which department) alone, on this
    run's shape with the departments multiplied by each factor (median of 3 each)."""
    found = []
    for factor in factors:
        count = scenario.departments * factor
        shape = Scenario(count, scenario.templates, scenario.unowned, 0, 0, count, 0, scenario.seed)
        departments = [
            Department(shape.department(d), [f"{shape.department(d)}-*"], True, False)
            for d in range(count)
        ]
        templates = [
            Template(id=f"{d}-{name}", name=name)
            for d in range(count)
            for name in shape.template_names(d)
        ] + [Template(id=f"u{k}", name=f"shared-{k + 1:02d}") for k in range(shape.unowned)]
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            assign_templates(departments, templates)
            samples.append(time.perf_counter() - started)
        found.append([count, len(templates), statistics.median(samples)])
    return found


async def other_member_add(
    scim: ScimSide, database: Database, scenario: Scenario, rng: random.Random
) -> None:
    """Add a user to one of the other groups it is not yet in, as a SCIM PATCH does."""
    user_ids, group_ids, _ = ids(scenario)
    while True:
        group_id = group_ids[rng.randrange(1 + 2 * scenario.departments, scenario.groups)]
        user_id = user_ids[rng.randrange(scenario.users)]
        async with database.transaction(write=False) as connection:
            present = (
                await connection.execute(
                    select(func.count())
                    .select_from(MEMBERS)
                    .where(MEMBERS.c.group_id == group_id, MEMBERS.c.member_id == user_id)
                )
            ).scalar_one()
        if not present:
            await scim.add_member(group_id, user_id)
            return


async def measure(backend: str, url: str, scenario: Scenario, options: dict[str, Any]) -> Any:
    figures: dict[str, Any] = {"backend": backend}
    logger = logging.getLogger("scim_bridge")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(DroppedLog())
    database = Database(url)
    try:
        state = FastCoderState(DoubleConfig(rate_limit=0))
        bridge_user = state.create_user(
            "bridge", "bridge@example.com", name="Bridge", login_type="none", roles=BRIDGE_ROLES
        )
        token = state.create_token(bridge_user, "template-bench")
        started = time.perf_counter()
        figures["double"] = await load_double(database, state, scenario)
        figures["double"]["seconds"] = time.perf_counter() - started
        log(f"  double loaded: {figures['double']}")
        async with database.transaction(write=False) as connection:
            figures["effective_rows"] = int(
                (await connection.execute(select(func.count()).select_from(EFFECTIVE))).scalar_one()
            )
            if not database.is_sqlite:
                version = await connection.execute(text("SHOW server_version"))
                figures["postgresql"] = version.scalar_one()
        app, _ = create_coder_double(state=state)
        timed = TimedApp(app)
        with LoopbackServer(timed) as server:
            common = {"url": server.url, "token": token, "rate_limit_per_minute": 0}
            isolated = build_engine(
                database, CoderSettings(**common, template_isolation=scenario.isolation())
            )
            plain = build_engine(database, CoderSettings(**common))
            try:
                await run_all(
                    Bench(state, timed, isolated, plain), database, url, scenario, options, figures
                )
            finally:
                await isolated.client.aclose()
                await plain.client.aclose()
    finally:
        await database.dispose()
    return figures


async def run_all(
    bench: Bench,
    database: Database,
    url: str,
    scenario: Scenario,
    options: dict[str, Any],
    figures: dict[str, Any],
) -> None:
    state = bench.state
    # 0. the preload is what the bridge would have made: a full resync changes nothing
    check = await bench.sync(bench.plain, "preload check: full resync, no isolation", full=True)
    figures["preload_check"] = check
    log(f"  {check['label']}: {check['seconds']:.1f} s, {check['writes']} writes, ok={check['ok']}")
    if check["writes"] or not check["ok"]:
        raise RuntimeError(f"the preload is not what the bridge makes: {check}")

    # 1. first check
    figures["first"] = await bench.check(bench.isolated, "first check")
    figures["first"]["mismatched_after"] = acl_mismatches(state, scenario)

    # 2. no-op checks
    figures["noop"] = [
        await bench.check(bench.isolated, f"no-op check {k + 1}")
        for k in range(options["noop_runs"])
    ]
    figures["noop_mismatched_after"] = acl_mismatches(state, scenario)

    # 3. hand-made cross-department grants
    grants = []
    for k in range(options["grant_runs"]):
        made = cross_grants(state, scenario, options["grants"], f"{scenario.seed}:grants:{k}")
        run = await bench.check(bench.isolated, f"check after {made} cross-department grants")
        run["grants"] = made
        run["mismatched_after"] = acl_mismatches(state, scenario)
        grants.append(run)
    figures["grants"] = grants

    # 4. incremental-sync overhead: _unchanged(), then member adds + incremental syncs
    figures["unchanged"] = await unchanged_breakdown(bench.isolated, options["unchanged_runs"])
    total = figures["unchanged"]["total"]
    log(
        f"  _unchanged(): median {statistics.median(total) * 1000:.1f} ms of {len(total)}, "
        f"results {set(figures['unchanged']['results'])}"
    )
    scim = ScimSide(database, url)
    rng = random.Random(f"{scenario.seed}:adds")
    syncs: dict[str, list[dict[str, Any]]] = {"isolated": [], "plain": []}
    engines = {"isolated": bench.isolated, "plain": bench.plain}
    for k in range(options["sync_runs"] + 1):  # the first round warms up (user index)
        order = ["isolated", "plain"] if k % 2 == 0 else ["plain", "isolated"]
        for name in order:
            await other_member_add(scim, database, scenario, rng)
            run = await bench.sync(engines[name], f"incremental sync ({name})", full=False)
            run["warmup"] = k == 0
            syncs[name].append(run)
            log(
                f"  {run['label']}{' (warm-up)' if k == 0 else ''}: {run['seconds']:.2f} s, "
                f"{run['reads']} reads + {run['writes']} writes, ok={run['ok']}"
            )
    figures["syncs"] = syncs
    figures["syncs_mismatched_after"] = acl_mismatches(state, scenario)
    figures["rules"] = rules_scaling(scenario)
    log(f"  assign_templates: {figures['rules']}")

    # optional: a periodic check of departments that keep Everyone
    if options["open_check"]:
        set_everyone(state, "use")
        settings = bench.isolated.settings.model_copy(
            update={"template_isolation": scenario.isolation(isolated=False)}
        )
        engine = build_engine(database, settings)
        bench.recorders[id(engine)] = Recorder(engine.client)
        try:
            figures["open"] = await bench.check(engine, "check, not isolated, Everyone present")
        finally:
            await engine.client.aclose()
            set_everyone(state, None)


def measure_run(backend: str, url: str, scenario: Scenario, options: dict[str, Any]) -> Any:
    return asyncio.run(measure(backend, url, scenario, options))


# -- reporting ------------------------------------------------------------------------------


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def _s(seconds: float) -> str:
    if seconds >= 120:
        return f"{seconds:,.0f} s ({seconds / 60:.1f} min)"
    if seconds >= 1:
        return f"{seconds:,.2f} s"
    return f"{seconds * 1000:,.1f} ms"


def _calls(run: dict[str, Any]) -> str:
    parts = [f"{KINDS.get(key, key)} {n:,}" for key, n in run["calls"].items()]
    return ", ".join(parts) or "none"


def _each(runs: list[dict[str, Any]], key: str = "seconds") -> str:
    return ", ".join(_s(r[key]) for r in runs)


def summary(saved: dict[str, Any]) -> dict[str, Any]:
    """The figures the tables show, from one run."""
    f = saved["figures"]
    noop = f["noop"]
    syncs = {name: [r for r in runs if not r["warmup"]] for name, runs in f["syncs"].items()}
    iso = _median([r["seconds"] for r in syncs["isolated"]])
    plain = _median([r["seconds"] for r in syncs["plain"]])
    unchanged = _median(f["unchanged"]["total"])
    template_calls = sum(
        n for run in syncs["isolated"] for key, n in run["calls"].items() if "/templates" in key
    )
    return {
        "first": f["first"]["seconds"],
        "noop": _median([r["seconds"] for r in noop]),
        "grants": _median([r["seconds"] for r in f["grants"]]),
        "unchanged": unchanged,
        "sync_isolated": iso,
        "sync_plain": plain,
        "template_calls_in_syncs": template_calls,
        "sync_ok": all(r["ok"] for runs in syncs.values() for r in runs),
    }


def backend_table(saved: dict[str, Any]) -> list[str]:
    f, args = saved["figures"], saved["args"]
    s = summary(saved)
    first, noop, grants = f["first"], f["noop"], f["grants"]
    owned = args["departments"] * args["templates"]
    unchanged = f["unchanged"]
    syncs = {name: [r for r in runs if not r["warmup"]] for name, runs in f["syncs"].items()}
    expected_first = 3 * owned  # Everyone removed, admin group added, department group added
    noop_writes = sum(r["writes"] for r in noop)
    lines = [
        f"#### {LABELS[saved['backend']]}",
        "",
        "| measurement | figure | expected | |",
        "| --- | --- | --- | --- |",
        f"| 1. first check (`check_templates()` after the groups were linked): wall time | "
        f"**{_s(first['seconds'])}** (in the double {_s(first['double_seconds'])}, waiting "
        f"for answers {_s(first['http_seconds'])}, {first['bytes'] / 1e6:,.1f} MB received) "
        "| | |",
        f"| … Coder calls | {_calls(first)} | 1 + 1 + {owned} GET + {owned} PATCH | "
        f"{_ok(first['reads'] == owned + 2 and first['writes'] == owned)} |",
        f"| … corrections / templates checked / ACLs wrong afterwards | "
        f"{first['corrections']:,} / {first['templates_checked']} / "
        f"{first['mismatched_after']} | {expected_first:,} / {owned} / 0 | "
        f"{_ok(first['corrections'] == expected_first and not first['mismatched_after'])} |",
        f"| 2. no-op check: wall time, median of {len(noop)} ({_each(noop)}) | "
        f"**{_s(s['noop'])}** (in the double "
        f"{_s(_median([r['double_seconds'] for r in noop]))}, "
        f"{noop[-1]['bytes'] / 1e6:,.1f} MB received) | | |",
        f"| … Coder calls (each run) | {_calls(noop[-1])} | 0 writes | "
        f"{_ok(noop_writes == 0 and f['noop_mismatched_after'] == 0)} |",
        f"| 3. check after {args['grants']} cross-department grants, median of {len(grants)} "
        f"({_each(grants)}) | **{_s(s['grants'])}** | | |",
        "| … ACL PATCHes / corrections per run; ACLs wrong afterwards | "
        + ", ".join(f"{r['writes']} / {r['corrections']}" for r in grants)
        + f"; {grants[-1]['mismatched_after']} | {args['grants']} / {args['grants']}; 0 | "
        + _ok(
            all(r["writes"] == r["grants"] == r["corrections"] for r in grants)
            and not grants[-1]["mismatched_after"]
        )
        + " |",
        f"| 4. `TemplateIsolation._unchanged()` with {unchanged['links']:,} links, median of "
        f"{len(unchanged['total'])} (all returned {set(unchanged['results'])}) | "
        f"**{_s(s['unchanged'])}** (min {_s(min(unchanged['total']))}, max "
        f"{_s(max(unchanged['total']))}) | | |",
        f"| … of which the read transaction (its start + the tree, cached: one `hierarchy_state` "
        f"read, {_s(_median(unchanged['tree']))}; `read_links`, "
        f"{_s(_median(unchanged['links_read']))}"
        f") / `resolve_departments` / fingerprint (medians) | {_s(_median(unchanged['db']))} / "
        f"{_s(_median(unchanged['resolve']))} / {_s(_median(unchanged['print']))} | | |",
        f"| … one-member incremental `sync(full=False)`, isolation configured, median of "
        f"{len(syncs['isolated'])} ({_each(syncs['isolated'])}) | **{_s(s['sync_isolated'])}** "
        "| | |",
        f"| … the same, isolation not configured, median of {len(syncs['plain'])} "
        f"({_each(syncs['plain'])}) | **{_s(s['sync_plain'])}** | | |",
        f"| … ratio with / without; `_unchanged()` as a share of the sync with isolation | "
        f"{s['sync_isolated'] / s['sync_plain']:.3f}×; "
        f"{100 * s['unchanged'] / s['sync_isolated']:.1f} % | | |",
        f"| … template calls during the incremental syncs with isolation | "
        f"{s['template_calls_in_syncs']} | 0 | {_ok(s['template_calls_in_syncs'] == 0)} |",
        f"| … Coder calls of one incremental sync (with isolation) | "
        f"{_calls(syncs['isolated'][-1])} | | "
        f"{_ok(s['sync_ok'])} |",
    ]
    if "open" in f:
        open_run = f["open"]
        lines += [
            f"| optional: a check of {args['departments']} departments **not** isolated, "
            f"Everyone on every template (what every periodic check costs them) | "
            f"**{_s(open_run['seconds'])}** ({open_run['seconds'] / s['noop']:.1f}× the "
            f"isolated no-op check), {open_run['bytes'] / 1e6:,.1f} MB received, "
            f"{open_run['writes']} writes | | |",
        ]
    rules = f.get("rules", [])
    if rules:
        lines.append(
            "| `assign_templates` alone (pure; departments × "
            + ", ".join(str(r[0] // args["departments"]) for r in rules)
            + ") | "
            + ", ".join(f"{r[0]} departments / {r[1]:,} templates: {_s(r[2])}" for r in rules)
            + " | | |"
        )
    lines += [
        f"| ratios in this run: first / no-op check; no-op check / `_unchanged()` | "
        f"{s['first'] / s['noop']:.1f}×; {s['noop'] / s['unchanged']:.0f}× | | |",
    ]
    return lines


def _ok(condition: bool) -> str:
    return "**met**" if condition else "**MISSED**"


def rate_table(saved: dict[str, Any]) -> list[str]:
    """Coder's limit applied to the no-op check's (and the first check's) calls."""
    f = saved["figures"]
    noop, first = f["noop"][-1], f["first"]
    lines = [
        "| check | path pattern | calls | distinct paths | most calls on one path |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for label, run in (("no-op (last run)", noop), ("first", first)):
        for pattern, row in run["rate"]["patterns"].items():
            lines.append(
                f"| {label} | `{pattern}` | {row['calls']:,} | {row['paths']:,} | "
                f"{row['max_per_path']} |"
            )
    lines += [
        "",
        "| check | measured, limit off | floor at 512/min, Coder's key (user + URL path) | "
        "replayed through the bridge's `RatePacer` at 512/min | floor if keyed by route "
        "pattern | floor if keyed by user alone |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for label, run in (("no-op (last run)", noop), ("first", first)):
        rate = run["rate"]
        lines.append(
            f"| {label} | {_s(run['seconds'])} | "
            f"{_s(max(run['seconds'], rate['floor_seconds']))} "
            f"(+{rate['floor_seconds']:.0f} s of windows) | "
            f"{_s(rate['paced']['seconds'])} (of which {_s(rate['paced']['waited'])} "
            f"waiting) | +{rate['pattern_floor_seconds']:.0f} s | "
            f"+{rate['user_floor_seconds']:.0f} s |"
        )
    return lines


def phase_table(saved: dict[str, Any]) -> list[str]:
    f = saved["figures"]
    runs = [("first check", f["first"]), ("no-op check (last)", f["noop"][-1])]
    lines = [
        "| phase (bridge side, each including its calls) | "
        + " | ".join(label for label, _ in runs)
        + " |",
        "| --- | " + " | ".join("---:" for _ in runs) + " |",
    ]
    for (owner, name), text_ in PHASES.items():
        key = f"{owner}.{name}"
        lines.append(
            f"| {text_} | " + " | ".join(_s(run["phases"].get(key, 0.0)) for _, run in runs) + " |"
        )
    lines.append(
        "| bridge's own work (wall time − waiting for answers) | "
        + " | ".join(_s(run["seconds"] - run["http_seconds"]) for _, run in runs)
        + " |"
    )
    lines.append(
        "| in the double (its ASGI app: handler, JSON, socket) | "
        + " | ".join(_s(run["double_seconds"]) for _, run in runs)
        + " |"
    )
    return lines


def report(runs: list[dict[str, Any]]) -> str:
    base = runs[0]
    args = base["args"]
    owned = args["departments"] * args["templates"]
    prepared = base["prepared"]
    lines = [
        BEGIN,
        "Commands (from /work/main after `. /work/venv/bin/activate`), one run each:",
        "",
        "```",
        *(run["command"] for run in runs),
        "```",
        "",
    ]
    for run in runs:
        rf = run["facts"]
        lines.append(
            f"- {LABELS[run['backend']]}: run {rf.get('started', '?')} on {rf.get('cpu', '?')}, "
            f"nproc {rf['nproc']}, {rf.get('memory_gib', '?')} GiB RAM, load average at start "
            f"{rf.get('loadavg', '?')} (shared, noisy machine: one run, medians where "
            f"repeated); Python {rf['python']}, SQLite {rf['sqlite']}, SQLAlchemy "
            f"{rf['sqlalchemy']}"
            + (
                f", PostgreSQL {run['figures']['postgresql']}"
                if "postgresql" in run["figures"]
                else ""
            )
            + f"; commit {rf.get('commit', '?')}"
            + (
                " with uncommitted changes under scim_bridge/"
                if rf.get("scim_bridge_uncommitted")
                else ""
            )
            + f"; whole run {_s(run['wall_seconds'])}."
        )
    double = base["figures"]["double"]
    lines += [
        "",
        f"Tenant: {args['departments']} departments, each a department group (under one "
        f"parent group, `Engineering`) with its template admin group as a child and "
        f"{args['templates']} templates ({owned} owned templates, patterns `d01-*` …, every "
        f"department `isolated: true`), plus {args['unowned']} templates of no department; "
        f"{args['users']:,} users, each in one department group (the first {args['admins']} "
        f"of each also in its admin group); {args['other_groups']:,} other groups of "
        f"{args['other_members']} random users each. {prepared['counts'].get('links', 0):,} "
        f"`coder_group_link` rows, {prepared['counts'].get('memberships', 0):,} direct "
        f"memberships and edges, {base['figures']['effective_rows']:,} effective memberships. "
        f"Coder: the double over real HTTP on 127.0.0.1 (rate limit off, `FastCoderState`), "
        f"holding {double['coder_users']:,} users, the {double['coder_groups']:,} linked groups "
        f"({double['coder_memberships']:,} memberships) and {double['templates']} templates, "
        "each created as Coder does (Everyone: `use`). Bridge: `build_engine`, "
        "`rate_limit_per_minute: 0`; the preload was checked with a full resync of the engine "
        "without isolation (0 writes). One ACL GET per owned template, "
        f"{ACL_READS_AT_ONCE} at a time (`ACL_READS_AT_ONCE`).",
        "",
    ]
    for run in runs:
        lines += [*backend_table(run), ""]
        lines += [
            f"Where the time of the checks went ({LABELS[run['backend']]}):",
            "",
            *phase_table(run),
            "",
        ]
    lines += [
        f"**Under Coder's default limit** (computed from the {LABELS[base['backend']]} run's "
        "call trace, not waited out). Coder keys its limiter by user **and URL path** "
        "(coder-contract.md §1.4: `httprate.KeyByEndpoint` is `r.URL.Path`, every method of a "
        "path together, not the route pattern). Every template's ACL is its own path "
        "(`/templates/{id}/acl`), so a check sends one call per path to each of them (two in a "
        "check that patches: GET then PATCH) and only the organization lookup and the "
        "template list repeat across checks:",
        "",
        *rate_table(base),
        "",
        END,
    ]
    return "\n".join(lines)


def write_section(path: Path, generated: str) -> None:
    """Put ``generated`` between its markers in ``path``, or append a new section at the end."""
    markdown.write_section(
        path,
        generated,
        section=SECTION,
        begin=BEGIN,
        end=END,
        intro=(
            "Measured with `bench/template_bench.py`: the Coder calls and wall time of the "
            "department template ACL check (`SyncEngine.check_templates()`, "
            "`scim_bridge/sync/templates.py`), and what isolation adds to an incremental "
            "sync, against the Coder double over HTTP. `python -m bench.template_bench "
            "--help` lists the options.\n\n"
        ),
    )


# -- command line ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.template_bench",
        description="Benchmark department template isolation against the Coder double over "
        "HTTP: first, no-op and drift checks of the template ACLs, and the cost of isolation "
        "in an incremental sync.",
    )
    parser.add_argument("--backend", choices=BACKENDS, default="sqlite")
    parser.add_argument("--departments", type=int, default=50, help="default 50")
    parser.add_argument("--templates", type=int, default=10, help="per department (default 10)")
    parser.add_argument("--unowned", type=int, default=20, help="templates of no department")
    parser.add_argument(
        "--other-groups", type=int, default=10_000, help="other linked groups (default 10,000)"
    )
    parser.add_argument("--other-members", type=int, default=3, help="users per other group")
    parser.add_argument("--users", type=int, default=5_000, help="default 5,000")
    parser.add_argument("--admins", type=int, default=3, help="users per admin group")
    parser.add_argument("--grants", type=int, default=25, help="cross-department grants")
    parser.add_argument("--noop-runs", type=int, default=5)
    parser.add_argument("--grant-runs", type=int, default=3)
    parser.add_argument("--unchanged-runs", type=int, default=20)
    parser.add_argument("--sync-runs", type=int, default=9, help="per engine, after a warm-up")
    parser.add_argument(
        "--open-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time one check of departments that keep Everyone (default on)",
    )
    parser.add_argument("--pg-url", default=PG_ADMIN_URL, help="PostgreSQL admin URL")
    parser.add_argument("--workdir", type=Path, default=None, help="where SQLite files go")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--json", type=Path, default=None, help="write raw figures as JSON")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        help="run nothing: report the runs saved with --json (one per backend)",
    )
    parser.add_argument(
        "--report", type=Path, default=None, help="write the section into this Markdown file"
    )
    args = parser.parse_args(argv)
    if args.departments < 2 or args.templates < 1 or args.users < args.departments:
        parser.error("need at least 2 departments, 1 template each, and a user per department")
    if args.grants > args.departments * args.templates:
        parser.error("more grants than owned templates")
    return args


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    started = time.perf_counter()
    scenario = Scenario(
        args.departments,
        args.templates,
        args.unowned,
        args.other_groups,
        args.other_members,
        args.users,
        args.admins,
        args.seed,
    )
    options = {
        "noop_runs": args.noop_runs,
        "grant_runs": args.grant_runs,
        "grants": args.grants,
        "unchanged_runs": args.unchanged_runs,
        "sync_runs": args.sync_runs,
        "open_check": args.open_check,
    }
    facts = environment()
    facts["started"] = f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    log(json.dumps(facts))
    saved: dict[str, Any] = {
        "command": command,
        "backend": args.backend,
        "facts": facts,
        "args": {k: v for k, v in vars(args).items() if isinstance(v, int | str | bool)},
    }
    log(f"{LABELS[args.backend]}:")
    with tempfile.TemporaryDirectory(prefix="template-bench-") as scratch:
        workdir = args.workdir or Path(scratch)
        with scratch_database(args.backend, workdir, args.pg_url, args.keep) as url:
            saved["prepared"] = in_child(preload, url, scenario)
            log(f"  preloaded: {saved['prepared']}")
            saved["figures"] = in_child(measure_run, args.backend, url, scenario, options)
    saved["wall_seconds"] = time.perf_counter() - started
    facts["sources_end"] = environment().get("sources")
    return saved


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        runs = [json.loads(path.read_text()) for path in args.from_json]
    else:
        command = "python -m bench.template_bench " + shlex.join(
            sys.argv[1:] if argv is None else argv
        )
        runs = [run(args, command)]
        if args.json:
            args.json.write_text(json.dumps(runs[0], indent=1, default=str))
    generated = report(runs)
    print()
    print(generated)
    if args.report:
        write_section(args.report, generated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
