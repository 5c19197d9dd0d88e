"""Retention of stored event payloads: after EVENT_PAYLOAD_RETENTION_DAYS, ids only.

Runs in every web process, one run at a time across them (a lease of raxx_queue.db.jobs;
rows are also claimed with SKIP LOCKED, so even overlapping runs strip each row once).
The ledger row of each event stays whole: deduplication needs only its id, the
ordering guard the times stored on the state rows; a stripped payload keeps the
envelope and the ids of its object (billing_strip_payload).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass
from typing import Any

import structlog

from raxx_queue.db import jobs
from raxx_queue.db.pool import UNAVAILABLE, Database

log = structlog.get_logger(__name__)

JOB = "event-payload-retention"
STRIP = """
SELECT stripped, bytes_before, bytes_after
  FROM billing_strip_old_payloads(now() - make_interval(days => $1), $2)
"""


@dataclass(frozen=True)
class RetentionConfig:
    """Tuning of the job; the defaults are the production values."""

    interval: float = 3600.0  # a run is due hourly
    poll_seconds: float = 600.0  # how often a process checks whether a run is due
    lease_seconds: float = 300.0
    batch: int = 1000  # rows per statement: short transactions, short row locks


class EventRetentionJob:
    """Strips payloads older than the retention period, in batches."""

    def __init__(
        self, db: Database, retention_days: int, config: RetentionConfig | None = None
    ) -> None:
        self._db = db
        self._days = retention_days
        self._config = config or RetentionConfig()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="event-payload-retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run_once(self, *, force: bool = False) -> dict[str, Any] | None:
        """One run if it is due (or forced) and no other process holds it; its report."""
        config = self._config
        held = await jobs.claim(self._db, JOB, uuid.uuid4().hex, config.lease_seconds, force=force)
        if held is None:
            return None
        report: dict[str, Any] = {
            "retention_days": self._days,
            "stripped": 0,
            "bytes_before": 0,
            "bytes_after": 0,
        }
        outcome = "failed"
        try:
            outcome = await self._strip(held, report)
        finally:
            with contextlib.suppress(*UNAVAILABLE):
                await jobs.finish(self._db, held, outcome, report, config.interval)
        if report["stripped"]:
            log.info("event_payloads_stripped", outcome=outcome, **report)
        return {"outcome": outcome, **report}

    async def _strip(self, held: jobs.Claim, report: dict[str, Any]) -> str:
        while True:
            async with self._db.connection() as conn:
                row = await conn.fetchrow(STRIP, self._days, self._config.batch)
            assert row is not None
            for key in ("stripped", "bytes_before", "bytes_after"):
                report[key] += row[key]
            if row["stripped"] < self._config.batch:
                return "ok"
            if not await jobs.renew(self._db, held, self._config.lease_seconds):
                return "lease_lost"

    async def _run(self) -> None:
        while True:
            # first wait, then run: a process's start is busy enough, and hourly is plenty
            await asyncio.sleep(self._config.poll_seconds)
            try:
                await self.run_once()
            except UNAVAILABLE:
                log.warning("event_retention_database_unavailable")
            except Exception as error:
                log.error("event_retention_failed", error_type=type(error).__name__)
