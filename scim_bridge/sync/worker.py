"""The background worker started with the app: journal changes soon, everything on schedule.

After start-up it runs a full resync (which also catches up after a crash or an outage),
then syncs journal changes once they have settled for ``debounce_seconds``, runs a full
resync every ``resync_interval_seconds``, and checks the departments' template ACLs every
``template_acl_interval_seconds`` in between (new templates, edits by department admins).
Failures back off exponentially, up to a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from ..config import CoderSettings
from .engine import SyncEngine, SyncReport

log = logging.getLogger("scim_bridge.sync")
MAX_BACKOFF_SECONDS = 60.0


class SyncWorker:
    def __init__(self, engine: SyncEngine, settings: CoderSettings):
        self.engine = engine
        self.settings = settings
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._full_requested = asyncio.Event()
        self.last_report: SyncReport | None = None
        self.on_report: Callable[[SyncReport], None] | None = None  # each finished run: metrics

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="scim-bridge sync")

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.engine.release_lease()

    def request_full_sync(self) -> None:
        self._full_requested.set()

    async def _run(self) -> None:
        next_full = time.monotonic()
        next_templates = self._next_template_check()
        backoff = 0.0
        tick = max(min(self.settings.debounce_seconds, 1.0), 0.05)
        while not self._stop.is_set():
            try:
                full = self._full_requested.is_set() or time.monotonic() >= next_full
                report: SyncReport | None = None
                if full:
                    self._full_requested.clear()
                    report = await self.engine.sync(full=True)
                    if report.ok:
                        interval = self.settings.resync_interval_seconds or float("inf")
                        next_full = time.monotonic() + interval
                        next_templates = self._next_template_check()
                elif time.monotonic() >= next_templates:  # before the journal: a busy IdP
                    report = await self.engine.check_templates()  # must not starve it
                    next_templates = self._next_template_check()
                elif await self.engine.pending_changes():
                    await self._sleep(self.settings.debounce_seconds)
                    report = await self.engine.sync(full=False)
                if report is not None:
                    self.last_report = report
                    if self.on_report is not None:
                        self.on_report(report)
                    failed = bool(report.failures)
                    backoff = min(max(backoff * 2, 1.0), MAX_BACKOFF_SECONDS) if failed else 0.0
            except Exception:  # a bug must not stop syncing for good
                log.exception("sync run failed")
                backoff = min(max(backoff * 2, 1.0), MAX_BACKOFF_SECONDS)
            await self._sleep(backoff or tick)

    def _next_template_check(self) -> float:
        interval = self.settings.template_acl_interval_seconds
        if not interval or not self.settings.template_isolation.departments:
            return float("inf")
        return time.monotonic() + interval

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout=seconds)
