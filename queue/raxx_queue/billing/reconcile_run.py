"""Reconcile of every customer, one run at a time across processes (docs/security.md,
finding 6): the CLI's `reconcile --all` and Console's `{"all": true}` share the job's
lease, its checkpoint (written only while the lease is held) and its pacing; Console's
call is also bounded, so that it answers within the router's 30 seconds and never
outlives its client. The next call (or CLI run) resumes where the last one stopped.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from raxx_queue.billing.errors import ReconcileRunning
from raxx_queue.billing.reconcile import ReconcileReport, reconcile_stripe_customer
from raxx_queue.db import checkpoints, jobs
from raxx_queue.db import reconcile as sql
from raxx_queue.db.pool import Database
from raxx_queue.stripe_gateway import StripeGateway
from raxx_queue.webhooks.pipeline import EventContext

JOB = "reconcile-all"
# renewed well before it lapses; a run that lost it (a frozen process) stops
LEASE_SECONDS = 120.0
RENEW_AFTER_SECONDS = LEASE_SECONDS / 4
# each customer costs three Stripe reads; the CLI's default rate
DEFAULT_READS_PER_SECOND = 20.0


@dataclass(frozen=True)
class RunBounds:
    """Where one run stops even if customers remain (None: no bound)."""

    max_customers: int | None = None
    max_seconds: float | None = None


# Console's call: within Heroku's 30 s router timeout, with room for the last customer
ROUTE_BOUNDS = RunBounds(max_customers=200, max_seconds=20.0)


@dataclass
class RunReport(ReconcileReport):
    # False when the run stopped at a bound: the checkpoint says where the next resumes
    complete: bool = True
    remaining: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "complete": self.complete, "remaining": self.remaining}


class LeaseLost(Exception):
    """Another run took the lease over (this one stalled past it)."""


async def reconcile_all(
    db: Database,
    stripe: StripeGateway,
    context: EventContext,
    *,
    resume: bool = True,
    bounds: RunBounds = RunBounds(),
    batch: int = 100,
    on_progress: Callable[[int, int], None] | None = None,
    pace: Callable[[], Awaitable[None]] | None = None,
) -> RunReport:
    """Every customer with a Stripe id, in id order, checkpointed after each one, while
    holding the job's lease; ReconcileRunning when another run holds it."""
    held = await jobs.claim(db, JOB, f"reconcile:{uuid.uuid4().hex}", LEASE_SECONDS, force=True)
    if held is None:
        raise ReconcileRunning()
    report = RunReport()
    outcome = "failed"
    try:
        await _walk(db, stripe, context, held, report, resume, bounds, batch, on_progress, pace)
        outcome = "ok" if report.complete else "bounded"
    except LeaseLost:
        outcome = "lease_lost"
        raise ReconcileRunning() from None
    finally:
        summary = {"checked": report.checked, "drifted": report.drifted}
        await jobs.finish(db, held, outcome, summary, next_in=0)
    return report


async def _walk(
    db: Database,
    stripe: StripeGateway,
    context: EventContext,
    held: jobs.Claim,
    report: RunReport,
    resume: bool,
    bounds: RunBounds,
    batch: int,
    on_progress: Callable[[int, int], None] | None,
    pace: Callable[[], Awaitable[None]] | None,
) -> None:
    started = renewed = time.monotonic()
    async with db.connection() as conn:
        position = await checkpoints.get_checkpoint(conn, JOB) if resume else None
        after = int(position) if position else 0
        total = await conn.fetchval(sql.COUNT_CUSTOMERS_AFTER, after)
    run_id = uuid.uuid4().hex[:12]
    done = 0
    while True:
        async with db.connection() as conn:
            rows = await conn.fetch(sql.CUSTOMERS_AFTER, after, batch)
        if not rows:
            break
        for row in rows:
            if _reached(bounds, done, started):
                report.complete, report.remaining = False, total - done
                return
            if pace is not None:
                await pace()
            report.add(
                await reconcile_stripe_customer(
                    db, stripe, row["stripe_customer_id"], context, run_id
                )
            )
            after = row["id"]
            if not await jobs.save_checkpoint(db, held, str(after)):
                raise LeaseLost()
            if time.monotonic() - renewed > RENEW_AFTER_SECONDS:
                if not await jobs.renew(db, held, LEASE_SECONDS):
                    raise LeaseLost()
                renewed = time.monotonic()
            done += 1
            if on_progress is not None:
                on_progress(done, total)
    async with db.connection() as conn:
        await checkpoints.clear_checkpoint(conn, JOB)


def _reached(bounds: RunBounds, done: int, started: float) -> bool:
    if bounds.max_customers is not None and done >= bounds.max_customers:
        return True
    return bounds.max_seconds is not None and time.monotonic() - started >= bounds.max_seconds
