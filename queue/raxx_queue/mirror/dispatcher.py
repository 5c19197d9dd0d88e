"""The mirror dispatcher: pushes changed mirror rows to Raptor from the web process.

One task per process. Each round claims due rows under a lease (see `outbox`), pushes
the newest version of each with no transaction open, then records every result in one
statement. It wakes on `Wakeups.mirror` (a local commit) or after a short poll
(work from other processes, retries coming due). While Raptor looks unavailable it
probes with one row at a time, pausing between rounds, instead of sending the backlog
into a dead endpoint, and no sooner than a Retry-After asked. A 410 Gone disables
the destination for every process (`destination`) until `raxx-queue mirror resume`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import structlog

from raxx_queue.db.pool import Database
from raxx_queue.metrics import (
    MIRROR_DISABLED,
    MIRROR_OLDEST_AGE,
    MIRROR_PENDING,
    MIRROR_PUSHES,
    labelled,
)
from raxx_queue.mirror import destination, outbox
from raxx_queue.mirror.backoff import retry_delay
from raxx_queue.mirror.delivery import Answer, MirrorEndpoint, mirror_client
from raxx_queue.mirror.outbox import Claim, PushResult
from raxx_queue.mirror.signing import MirrorSigner, signer_from_settings
from raxx_queue.sentry import capture_operational_event
from raxx_queue.settings import Settings
from raxx_queue.wakeups import Wakeup

log = structlog.get_logger(__name__)

# Outcomes that count towards "Raptor is down"; a "rejected" row is that row's problem.
UNAVAILABLE_OUTCOMES = frozenset({"failed", "timeout", "unreachable"})


@dataclass(frozen=True)
class DispatcherConfig:
    """Tuning of the dispatcher; the defaults are the production values."""

    batch_size: int = 32  # rows claimed, and pushed concurrently, per round
    connections: int = 8  # to Raptor; httpx scans them all per request: a few serve best
    request_timeout: float = 15.0  # one push, end to end; no answer by then: retried
    lease_seconds: float = 45.0  # must outlast a push with a wide margin
    poll_interval: float = 1.0
    retry_base: float = 1.0  # per-row backoff
    retry_cap: float = 60.0
    # pause between probe rounds while Raptor is down: also the longest a recovery
    # goes unnoticed
    outage_pause_base: float = 0.25
    outage_pause_cap: float = 2.0
    # pushes in flight at shutdown get this long (default: 6 s, or request_timeout + 1
    # if shorter), then are abandoned and their leases given back (SIGTERM's budget)
    stop_grace: float | None = None
    retry_after_cap: float = 600.0  # the longest Retry-After honoured
    stats_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.request_timeout <= 0 or self.poll_interval <= 0:
            raise ValueError("batch_size, request_timeout and poll_interval must be positive")
        if self.lease_seconds < 2 * self.request_timeout + 1:
            raise ValueError("lease_seconds must exceed twice the request timeout")

    @property
    def shutdown_grace(self) -> float:
        if self.stop_grace is not None:
            return self.stop_grace
        return min(self.request_timeout, 5.0) + 1.0


class MirrorDispatcher:
    """Claims, pushes and records; `start()` runs it as a task, `stop()` ends it."""

    def __init__(
        self,
        db: Database,
        client: httpx.AsyncClient,
        url: str,
        wakeup: Wakeup,
        config: DispatcherConfig | None = None,
        signer: MirrorSigner | None = None,
    ) -> None:
        self._db = db
        self._wakeup = wakeup
        self._config = config = config or DispatcherConfig()
        self._endpoint = MirrorEndpoint(
            client,
            url,
            timeout=config.request_timeout,
            signer=signer,
            retry_after_cap=config.retry_after_cap,
        )
        self._stopping = False
        self._stopped = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._outage = 0  # consecutive rounds in which Raptor looked unavailable
        self._quiet_until = 0.0  # monotonic time before which Raptor asked not to be sent
        self._stats_at = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="mirror-dispatcher")

    async def stop(self) -> None:
        """Stop claiming; let pushes in flight finish within the grace, then abandon them.

        The HTTP client is closed too: a stopped dispatcher does not start again.
        """
        self._stopping = True
        self._stopped.set()
        self._wakeup.nudge()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), self._config.shutdown_grace)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                log.warning("mirror_dispatcher_abandoned_pushes", grace=self._config.shutdown_grace)
        await self._endpoint.client.aclose()

    async def run(self) -> None:
        """The loop: one round, then wait for a nudge, the poll, or the outage pause."""
        log.info("mirror_dispatcher_started", batch_size=self._config.batch_size)
        errors = 0  # consecutive rounds that failed (database away, ...)
        while not self._stopping:
            claimed = 0
            try:
                claimed = await self.dispatch_once()
                await self._refresh_stats()
                errors = 0
            except asyncio.CancelledError:
                raise
            except Exception as error:
                errors += 1
                # the error type only: driver messages can carry parameters
                log.error("mirror_dispatch_failed", error_type=type(error).__name__, errors=errors)
            if self._stopping:
                break
            if errors:
                await self._pause(retry_delay(errors, base=self._config.poll_interval, cap=30.0))
            elif self._outage:
                await self._pause(max(self._outage_pause(), self._quiet_until - time.monotonic()))
            elif claimed < self._config.batch_size:
                await self._wakeup.wait(self._config.poll_interval)
            # a full batch: more is likely due, go again at once
        log.info("mirror_dispatcher_stopped")

    async def dispatch_once(self) -> int:
        """Claim due rows, push them, record the results; returns how many were claimed."""
        limit = 1 if self._outage else self._config.batch_size
        started = time.monotonic()
        async with self._db.connection() as conn:
            claims = await outbox.claim_due(conn, limit, self._config.lease_seconds)
        if not claims:
            return 0
        # A push must end while its lease still holds, so none starts after this.
        deadline = started + self._config.lease_seconds - self._config.request_timeout - 1.0
        try:
            pushed = await asyncio.gather(*(self._push(claim, deadline) for claim in claims))
        except asyncio.CancelledError:
            await self._release(claims)
            raise
        results = [result for result in pushed if result is not None]
        abandoned = [claim for claim, result in zip(claims, pushed, strict=True) if result is None]
        recorded = await self._record(results, abandoned)
        if recorded < len(results):
            log.warning("mirror_lease_lost", results=len(results), recorded=recorded)
        if any(result.outcome == "gone" for result in results):
            await self._disable()
        self._track_outage(results)
        return len(claims)

    async def _disable(self) -> None:
        """Raptor answered 410 Gone: stop pushing (every process) until resumed."""
        async with self._db.connection() as conn:
            newly = await destination.disable(conn, "HTTP 410")
        MIRROR_DISABLED.set(1)
        if newly:
            log.error("raptor_mirror_disabled", status=410, resume="raxx-queue mirror resume")
            capture_operational_event(
                "Raptor answered 410 Gone: mirror pushes are held until `raxx-queue mirror resume`",
                component="mirror",
            )

    async def _record(self, results: Sequence[PushResult], abandoned: Sequence[Claim]) -> int:
        """Record a round's results and give back unused leases."""
        # Once more, since unrecorded rows wait out their lease; after a lost connection
        # the pool has replaced the others (Database.connection), so this gets a fresh
        # one. Safe to repeat: a result that did commit cleared its lease, so it matches
        # no row.
        try:
            return await self._record_once(results, abandoned)
        except Exception as error:
            log.warning("mirror_record_retried", error_type=type(error).__name__)
            return await self._record_once(results, abandoned)

    async def _record_once(self, results: Sequence[PushResult], abandoned: Sequence[Claim]) -> int:
        async with self._db.connection() as conn:
            recorded = await outbox.record_results(conn, results)
            await outbox.release_leases(conn, abandoned)
        return recorded

    async def _push(self, claim: Claim, deadline: float) -> PushResult | None:
        """POST one row; None when it was not sent (stopping, or too late for the lease)."""
        if self._stopping or time.monotonic() > deadline:
            return None
        answer = await self._endpoint.push(claim.row)
        outcome, error = answer.outcome, answer.error
        labelled(MIRROR_PUSHES, outcome).inc()
        if outcome == "ok":
            return PushResult(claim, outcome)
        retry_in = self._retry_in(claim, answer)
        log.debug(
            "mirror_push_failed",
            queue_customer_id=claim.queue_customer_id,
            version=claim.version,
            attempts=claim.attempts + 1,
            error=error,
            retry_in=round(retry_in, 3),
        )
        if outcome == "rejected":
            log.warning(
                "mirror_push_rejected", queue_customer_id=claim.queue_customer_id, error=error
            )
        return PushResult(claim, outcome, retry_in=retry_in, error=error)

    def _retry_in(self, claim: Claim, answer: Answer) -> float:
        """The row's backoff, and no sooner than Raptor's Retry-After."""
        config = self._config
        backoff = retry_delay(claim.attempts + 1, base=config.retry_base, cap=config.retry_cap)
        if answer.retry_after is None:
            return backoff
        self._quiet_until = max(self._quiet_until, time.monotonic() + answer.retry_after)
        return max(backoff, answer.retry_after)

    def _track_outage(self, results: Sequence[PushResult]) -> None:
        if any(result.ok for result in results):
            if self._outage:
                log.info("raptor_mirror_recovered", failed_rounds=self._outage)
            self._outage = 0
            return
        unavailable = [r for r in results if r.outcome in UNAVAILABLE_OUTCOMES]
        if unavailable:
            self._outage += 1
            if self._outage == 1:
                log.warning("raptor_mirror_unavailable", error=unavailable[0].error)

    def _outage_pause(self) -> float:
        config = self._config
        return retry_delay(self._outage, base=config.outage_pause_base, cap=config.outage_pause_cap)

    async def _pause(self, seconds: float) -> None:
        """Wait, deaf to nudges (new rows would fail too), but not to stop()."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), seconds)

    async def _release(self, claims: Sequence[Claim]) -> None:
        """Best effort on cancellation: give the leases back so another process pushes."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0), self._db.connection(timeout=1.0) as conn:
                await outbox.release_leases(conn, claims)

    async def _refresh_stats(self) -> None:
        now = time.monotonic()
        if now - self._stats_at < self._config.stats_interval:
            return
        self._stats_at = now
        async with self._db.connection() as conn:
            pending, oldest_age = await outbox.pending_stats(conn)
            disabled = await destination.is_disabled(conn)
        MIRROR_PENDING.set(pending)
        MIRROR_OLDEST_AGE.set(oldest_age)
        MIRROR_DISABLED.set(1 if disabled else 0)


def build_mirror_dispatcher(
    settings: Settings, db: Database, wakeup: Wakeup, config: DispatcherConfig | None = None
) -> MirrorDispatcher | None:
    """The process's dispatcher when RAPTOR_MIRROR_URL is set; None (and a log) if not."""
    if settings.raptor_mirror_url is None:
        (log.warning if settings.is_production else log.info)(
            "mirror_dispatcher_disabled", reason="RAPTOR_MIRROR_URL is not set"
        )
        return None
    config = config or DispatcherConfig()
    client = mirror_client(settings, config.connections, config.request_timeout)
    signer = signer_from_settings(settings)
    if signer is None:
        (log.warning if settings.is_production else log.info)(
            "mirror_pushes_unsigned", reason="RAPTOR_MIRROR_SIGNING_SECRET is not set"
        )
    url = str(settings.raptor_mirror_url)
    return MirrorDispatcher(db, client, url, wakeup, config, signer)


@asynccontextmanager
async def run_mirror_dispatcher(
    settings: Settings, db: Database, wakeup: Wakeup, config: DispatcherConfig | None = None
) -> AsyncIterator[MirrorDispatcher | None]:
    """A dispatcher running for the block (tests, benchmarks); stopped on exit."""
    dispatcher = build_mirror_dispatcher(settings, db, wakeup, config)
    if dispatcher is not None:
        dispatcher.start()
    try:
        yield dispatcher
    finally:
        if dispatcher is not None:
            await dispatcher.stop()
