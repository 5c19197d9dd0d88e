"""One catch-up run: find the Stripe events Queue never received, and apply them.

First what Stripe says it could not deliver (`delivery_success=false`: failed, or
still being retried), as far back as Stripe keeps events on the first run and an hour
before the checkpoint after that. Then every event of the handled types since the
checkpoint (on the first run, since the newest event Queue holds), a slice at a time
(an hour at first, longer over quiet stretches), oldest first, the checkpoint moving
past each slice once it is applied. Only events
Queue has not recorded are applied, through the webhook's own statement
(`apply_stripe_event`: dedupe, ordering guard, mirror, audit as actor `catchup`), so a
webhook delivering the same event at the same moment leaves one effect.

Stripe keeps events for 30 days. A checkpoint older than that means events may have
been lost for good: the run reports the stretch (log, Sentry, outcome `gap`) and goes on
from the oldest one Stripe still has.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from raxx_queue.db import jobs
from raxx_queue.db.checkpoints import get_checkpoint
from raxx_queue.db.events import known_event_ids, newest_recorded_event
from raxx_queue.db.pool import UNAVAILABLE, Database
from raxx_queue.metrics import CATCHUP_APPLIED, STRIPE_EVENT_LAG
from raxx_queue.sentry import capture_operational_event
from raxx_queue.stripe_errors import StripeGatewayError, StripeUnavailable
from raxx_queue.stripe_gateway import StripeGateway
from raxx_queue.webhooks.errors import InvalidEvent
from raxx_queue.webhooks.event_listing import PAGE_SIZE, EventReader
from raxx_queue.webhooks.pipeline import EventContext, apply_stripe_event

log = structlog.get_logger(__name__)

Json = dict[str, Any]
JOB = "stripe-event-catchup"
RETENTION_SECONDS = 30 * 86_400
# Not the very edge of Stripe's window: its clock and ours differ a little.
RETENTION_MARGIN_SECONDS = 600


class LeaseLost(Exception):
    """Another process took the catch-up over (this run stalled past its lease)."""


@dataclass(frozen=True)
class Window:
    """Tuning of what a run lists."""

    # the first slice of the window; a slice that held less than a page of events makes
    # the next twice as long (up to max_slice_seconds), one of over ten pages halves it:
    # quiet stretches cost few requests, busy ones never fill memory
    slice_seconds: int = 3600
    max_slice_seconds: int = 7 * 86_400
    min_slice_seconds: int = 60
    # an event is listable a little after its `created`: each window starts this much
    # before the checkpoint, so a late one is still found
    overlap_seconds: int = 300
    # what the undelivered pass adds before the checkpoint: events listed late. Kept
    # short: another endpoint on the account that always fails makes every event
    # "undelivered", and this pass would then list all of them again each run
    undelivered_lookback_seconds: int = 3600


@dataclass
class CatchupReport:
    """What one run found and did (stored with the run, shown by /health)."""

    outcome: str = "ok"
    listed: int = 0
    already_known: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    applied: Counter[str] = field(default_factory=Counter)
    invalid: int = 0
    newest_at_stripe: int | None = None
    newest_applied_before: int | None = None
    newest_applied_after: int | None = None
    lag_before_seconds: int | None = None
    lag_after_seconds: int | None = None
    window: Json = field(default_factory=dict)
    gap: Json | None = None
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    seconds: float = 0.0

    @property
    def applied_count(self) -> int:
        return sum(self.applied.values())

    def as_dict(self) -> Json:
        return {
            "outcome": self.outcome,
            "listed": self.listed,
            "already_known": self.already_known,
            "applied": self.applied_count,
            "applied_by_type": dict(self.applied),
            "outcomes": dict(self.outcomes),
            "invalid": self.invalid,
            "newest_at_stripe": self.newest_at_stripe,
            "newest_applied_before": self.newest_applied_before,
            "newest_applied_after": self.newest_applied_after,
            "lag_before_seconds": self.lag_before_seconds,
            "lag_after_seconds": self.lag_after_seconds,
            "window": self.window,
            "gap": self.gap,
            "requests": self.requests,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "seconds": round(self.seconds, 3),
        }


def event_lag(newest_at_stripe: int | None, newest_applied: int | None) -> int | None:
    """How far Queue trails Stripe: 0 when Stripe has nothing newer; None when Queue has
    never applied an event that Stripe could compare with."""
    if newest_at_stripe is None:
        return 0
    if newest_applied is None:
        return None
    return max(0, newest_at_stripe - newest_applied)


def read_checkpoint(position: str | None) -> int | None:
    """`through` of a stored checkpoint: every event created before it has been seen."""
    if not position:
        return None
    through = orjson.loads(position).get("through")
    return int(through) if isinstance(through, int) else None


@dataclass
class CatchupRun:
    """The work of one run, holding the lease `held`."""

    db: Database
    stripe: StripeGateway
    context: EventContext
    reader: EventReader
    held: jobs.Claim
    window: Window
    keepalive: Callable[[], Awaitable[None]]
    clock: Callable[[], float] = time.time
    report: CatchupReport = field(default_factory=CatchupReport)

    async def execute(self, *, billing_enabled: bool) -> CatchupReport:
        """Run; the outcome says how it ended (never raises but for cancellation)."""
        started = time.monotonic()
        try:
            await self._run(billing_enabled)
        except LeaseLost:
            self.report.outcome = "lease_lost"
            log.warning("catchup_lease_lost", job=JOB)
        except StripeUnavailable:
            status = self.reader.stats.last_status
            self.report.outcome = "rate_limited" if status == 429 else "stripe_unavailable"
        except StripeGatewayError as error:
            self.report.outcome = "stripe_error"
            log.error("catchup_stripe_error", code=error.code, operation=error.operation)
        except UNAVAILABLE:
            self.report.outcome = "database_unavailable"
        except Exception as error:
            self.report.outcome = "failed"
            log.error("catchup_failed", error_type=type(error).__name__, exc_info=True)
        finally:
            stats = self.reader.stats
            self.report.requests = stats.requests
            self.report.retries = stats.retries
            self.report.rate_limited = stats.rate_limited
            self.report.seconds = time.monotonic() - started
        return self.report

    async def _run(self, billing_enabled: bool) -> None:
        report = self.report
        now = int(self.clock())
        report.newest_at_stripe = await self.reader.newest_created()
        report.newest_applied_before = await self._newest_applied()
        report.lag_before_seconds = event_lag(report.newest_at_stripe, report.newest_applied_before)
        self._publish_lag(report.lag_before_seconds)
        if not billing_enabled:
            # the kill switch stops every billing effect, this one too; the lag still shows
            report.outcome = "billing_off"
            return
        async with self.db.connection() as conn:
            through = read_checkpoint(await get_checkpoint(conn, JOB))
        oldest = now - RETENTION_SECONDS + RETENTION_MARGIN_SECONDS
        anchor = through if through is not None else report.newest_applied_before

        undelivered_from = oldest
        if through is not None:
            undelivered_from = max(oldest, through - self.window.undelivered_lookback_seconds)
        report.window["undelivered_from"] = undelivered_from
        await self._apply(await self._unknown(undelivered_from, now + 1, undelivered=True))

        if anchor is None:
            # nothing to measure from: Queue takes over from now on
            await self._save_checkpoint(now + 1)
        else:
            await self._catch_up_since(anchor, oldest, now + 1, first=through is None)

        report.newest_applied_after = await self._newest_applied()
        report.lag_after_seconds = event_lag(report.newest_at_stripe, report.newest_applied_after)
        self._publish_lag(report.lag_after_seconds)

    async def _catch_up_since(self, anchor: int, oldest: int, end: int, *, first: bool) -> None:
        start = anchor - self.window.overlap_seconds
        if start < oldest:
            # a checkpoint this old means the catch-up itself was off or stuck; on the
            # first run the anchor is only the newest event Queue holds, which a quiet
            # account may have received long ago without missing anything
            if not first:
                self._report_gap(anchor, oldest)
            start = oldest
        self.report.window.update({"from": start, "to": end})
        cursor, length = start, self.window.slice_seconds
        while cursor < end:
            slice_end = min(cursor + length, end)
            listed = self.report.listed
            await self._apply(await self._unknown(cursor, slice_end, undelivered=False))
            await self._save_checkpoint(slice_end)
            cursor = slice_end
            listed = self.report.listed - listed
            if listed < PAGE_SIZE:
                length = min(2 * length, self.window.max_slice_seconds)
            elif listed > 10 * PAGE_SIZE:
                length = max(length // 2, self.window.min_slice_seconds)

    def _report_gap(self, anchor: int, oldest: int) -> None:
        self.report.gap = {"from": anchor, "to": oldest}
        self.report.outcome = "gap"
        log.error(
            "catchup_events_beyond_retention",
            gap_from=anchor,
            gap_to=oldest,
            hint="Stripe no longer lists events this old: run `raxx-queue reconcile --all`",
        )
        capture_operational_event(
            "Stripe events older than its 30-day window may have been missed", job=JOB
        )

    async def _unknown(self, gte: int, lt: int, *, undelivered: bool) -> list[Json]:
        """The events created in [gte, lt) Queue has not recorded, oldest first."""
        found: dict[str, Json] = {}
        async for page in self.reader.pages(gte, lt, undelivered=undelivered):
            self.report.listed += len(page)
            async with self.db.connection() as conn:
                known = await known_event_ids(conn, [str(e.get("id")) for e in page])
            self.report.already_known += len(known)
            for event in page:
                if event.get("id") not in known:
                    found.setdefault(str(event.get("id")), event)
        # Stripe lists newest first, events of one second latest first: reversed, then
        # sorted by second, they come in the order Stripe created them
        listed = list(reversed(found.values()))
        return sorted(listed, key=lambda event: int(event.get("created", 0)))

    async def _apply(self, events: list[Json]) -> None:
        for event in events:
            await self.keepalive()
            try:
                result = await apply_stripe_event(self.db, event, self.context, self.stripe)
            except InvalidEvent as error:
                self.report.invalid += 1
                log.error("catchup_event_invalid", event_id=event.get("id"), reason=error.message)
                continue
            self.report.outcomes[result.outcome] += 1
            if result.outcome != "duplicate":
                self.report.applied[result.event_type] += 1
                CATCHUP_APPLIED.labels(type=result.event_type).inc()

    async def _save_checkpoint(self, through: int) -> None:
        position = orjson.dumps({"through": through}).decode()
        if not await jobs.save_checkpoint(self.db, self.held, position):
            raise LeaseLost()

    async def _newest_applied(self) -> int | None:
        async with self.db.connection() as conn:
            return await newest_recorded_event(conn)

    @staticmethod
    def _publish_lag(lag: int | None) -> None:
        if lag is not None:
            STRIPE_EVENT_LAG.set(lag)
