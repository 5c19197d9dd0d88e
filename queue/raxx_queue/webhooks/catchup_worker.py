"""The catch-up worker: in every web process, one run at a time across all of them.

Each process polls a lease row (`raxx_queue.db.jobs`): the run is due every
`STRIPE_EVENT_CATCHUP_SECONDS`, and once at each process's start; whichever process
claims the lease runs, the others find it held and wait for the next turn. A run
renews its lease as it goes; if it stalls past it and another takes over, it can no
longer move the checkpoint and stops (`lease_lost`). Its effects are applied exactly
once whatever happens: the ledger of processed events decides, not the lease.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from raxx_queue.db import jobs
from raxx_queue.db.pool import UNAVAILABLE, Database
from raxx_queue.metrics import CATCHUP_RUNS, STRIPE_EVENT_LAG
from raxx_queue.plans import price_tiers
from raxx_queue.settings import Settings
from raxx_queue.stripe_gateway import StripeGateway
from raxx_queue.webhooks.catchup import JOB, CatchupReport, CatchupRun, LeaseLost, Window
from raxx_queue.webhooks.event_listing import EventReader, ReaderConfig
from raxx_queue.webhooks.pipeline import EventContext

log = structlog.get_logger(__name__)

# Runs that ended normally wait a full interval; others are retried sooner.
SETTLED = frozenset({"ok", "gap", "billing_off"})


@dataclass(frozen=True)
class CatchupConfig:
    """Tuning of the worker; the defaults are the production values."""

    lease_seconds: float = 120.0  # outlasts the longest wait between two renewals
    renew_every: float = 20.0
    poll_seconds: float = 30.0  # how often a process checks whether a run is due
    retry_failed_after: float = 60.0
    # Stripe reads per second: a fifth of the test-mode limit, shared with the rest of Queue
    rate: float = 5.0
    attempts: int = 5
    backoff_base: float = 1.0
    backoff_cap: float = 30.0
    max_wait: float = 60.0
    window: Window = field(default_factory=Window)
    autostart: bool = True  # False: nothing runs until run_once is called (tests)
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep  # backoff waits (tests record)

    def reader(self) -> ReaderConfig:
        return ReaderConfig(
            rate=self.rate,
            attempts=self.attempts,
            backoff_base=self.backoff_base,
            backoff_cap=self.backoff_cap,
            max_wait=self.max_wait,
        )


def run_lag(report: dict[str, Any]) -> int | None:
    """The lag a stored run measured: after its work, or before it if it stopped early."""
    after = report.get("lag_after_seconds")
    lag = after if after is not None else report.get("lag_before_seconds")
    return lag if isinstance(lag, int) else None


def _holder() -> str:
    """A token unique to one run that still says where it ran."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class EventCatchup:
    """`start()` runs the loop as a task; `run_once()` is one turn (tests call it)."""

    def __init__(
        self,
        db: Database,
        stripe: StripeGateway,
        settings: Settings,
        config: CatchupConfig | None = None,
    ) -> None:
        self._db = db
        self._stripe = stripe
        self._settings = settings
        self._config = config or CatchupConfig()
        self._interval = float(settings.stripe_event_catchup_seconds)
        self._context = EventContext(
            price_tiers=price_tiers(settings),
            grace_days=settings.grace_period_days,
            dispute_access=settings.dispute_access,
            source="catchup",
            actor="catchup",
        )
        self._task: asyncio.Task[None] | None = None
        self._finished = asyncio.Condition()
        self.runs = 0  # runs this process completed
        self.last_report: CatchupReport | None = None

    def start(self) -> None:
        if self._config.autostart:
            self._task = asyncio.create_task(self._loop(), name="stripe-event-catchup")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    @property
    def running(self) -> bool:
        """Whether the loop is alive (a failed run never ends it)."""
        return self._task is not None and not self._task.done()

    async def wait_for_runs(self, count: int, timeout: float) -> CatchupReport:
        """Until this process has completed `count` runs; the last one's report."""
        async with asyncio.timeout(timeout), self._finished:
            await self._finished.wait_for(lambda: self.runs >= count)
        assert self.last_report is not None
        return self.last_report

    async def _loop(self) -> None:
        force = True  # at start, whatever the schedule says
        poll = min(self._config.poll_seconds, self._interval)
        while True:
            try:
                if await self.run_once(force=force) is None:
                    await self._refresh_lag()
            except UNAVAILABLE:
                log.warning("catchup_database_unavailable")
            except Exception as error:
                log.error("catchup_loop_error", error_type=type(error).__name__, exc_info=True)
            force = False
            # jittered: the process that just ran is not always first to find it due
            await asyncio.sleep(poll * random.uniform(0.5, 1.0))

    async def _refresh_lag(self) -> None:
        """Report the lag the last run measured, whichever process ran it: every dyno
        answers a scrape with the same, current value."""
        async with self._db.connection() as conn:
            run = await jobs.latest_run(conn, JOB)
        lag = run_lag(run["report"]) if run is not None else None
        if lag is not None:
            STRIPE_EVENT_LAG.set(lag)

    async def run_once(self, *, force: bool = False) -> CatchupReport | None:
        """One run if this process gets the lease (and it is due, unless forced); None
        when another process holds it or the next run is not due yet."""
        held = await jobs.claim(self._db, JOB, _holder(), self._config.lease_seconds, force=force)
        if held is None:
            return None
        renewed = time.monotonic()

        async def keepalive() -> None:
            nonlocal renewed
            if time.monotonic() - renewed < self._config.renew_every:
                return
            if not await jobs.renew(self._db, held, self._config.lease_seconds):
                raise LeaseLost()
            renewed = time.monotonic()

        reader = EventReader(
            self._stripe, self._config.reader(), keepalive=keepalive, sleep=self._config.sleep
        )
        run = CatchupRun(
            self._db,
            self._stripe,
            self._context,
            reader,
            held,
            self._config.window,
            keepalive,
        )
        try:
            report = await run.execute(billing_enabled=self._settings.flag_queue_billing)
        except asyncio.CancelledError:
            run.report.outcome = "stopped"
            # give the lease back at once rather than let it lapse (shutdown)
            await asyncio.shield(self._finish(held, run.report))
            raise
        await self._finish(held, report)
        return report

    async def _finish(self, held: jobs.Claim, report: CatchupReport) -> None:
        CATCHUP_RUNS.labels(outcome=report.outcome).inc()
        next_in = self._interval
        if report.outcome not in SETTLED:
            next_in = min(self._interval, self._config.retry_failed_after)
        await jobs.finish(self._db, held, report.outcome, report.as_dict(), next_in)
        log.info(
            "catchup_run",
            outcome=report.outcome,
            listed=report.listed,
            applied=report.applied_count,
            lag_before_seconds=report.lag_before_seconds,
            lag_after_seconds=report.lag_after_seconds,
            requests=report.requests,
            seconds=round(report.seconds, 3),
        )
        async with self._finished:
            self.runs += 1
            self.last_report = report
            self._finished.notify_all()


async def catchup_health(db: Database, *, enabled: bool) -> dict[str, Any]:
    """What /health says of missed events: whether the catch-up runs, how far Queue
    trailed Stripe when it last looked, and how that run ended."""
    status: dict[str, Any] = {
        "catchup": "on" if enabled else "off",
        "lag_seconds": None,
        "checked_at": None,
        "last_run": None,
    }
    try:
        async with db.connection(timeout=1.0) as conn:
            run = await jobs.latest_run(conn, JOB)
    except UNAVAILABLE:
        return status
    except asyncpg.PostgresError:
        return status  # not migrated yet: /ready says so
    if run is None:
        return status
    report = run["report"]
    status["lag_seconds"] = run_lag(report)
    status["checked_at"] = run["finished_at"].isoformat()
    status["last_run"] = {
        "outcome": run["outcome"],
        "applied": report.get("applied"),
        "gap": report.get("gap"),
    }
    return status
