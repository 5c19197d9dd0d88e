"""Background sealing of audit rows, in every process (sealers take turns on a lock)."""

from __future__ import annotations

import asyncio

import structlog

from raxx_queue.audit.chain import SEAL_BATCH, count_unsealed, seal_up_to, settled_horizon
from raxx_queue.db.pool import UNAVAILABLE, Database
from raxx_queue.metrics import AUDIT_SEALED, AUDIT_UNSEALED
from raxx_queue.wakeups import Wakeup

log = structlog.get_logger(__name__)
POLL_SECONDS = 2.0
# Rounds are at least this far apart: under load, one round seals the rows of many
# commits, and appenders meet the sealing lock a few times a second, not per event.
MIN_INTERVAL_SECONDS = 0.2


class AuditSealer:
    """Seals appended audit rows shortly after they commit.

    With FLAG_BILLING_AUDIT_WRITES=false (the circuit breaker) or no key it seals
    nothing: rows stay unsealed and are sealed in order once the flag is back.
    """

    def __init__(
        self,
        db: Database,
        key: bytes | None,
        wakeup: Wakeup,
        enabled: bool,
        min_interval: float = MIN_INTERVAL_SECONDS,
    ) -> None:
        self._db = db
        self._min_interval = min_interval
        self._key = key
        self._wakeup = wakeup
        self._enabled = enabled and key is not None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if not self._enabled:
            log.warning("audit_sealing_paused", reason="breaker open or no BILLING_AUDIT_HMAC_KEY")
        self._task = asyncio.create_task(self._run(), name="audit-sealer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def seal_now(self) -> int:
        """Seal everything appended before the call; returns the number sealed."""
        if not self._enabled or self._key is None:
            return 0
        # one horizon for the whole call: the table lock once, however many batches
        horizon = await settled_horizon(self._db)
        total = 0
        while True:
            sealed = await seal_up_to(self._db, self._key, horizon)
            total += sealed
            AUDIT_SEALED.inc(sealed)
            if sealed < SEAL_BATCH:  # all up to the horizon: the rest is newer than the call
                return total

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait(POLL_SECONDS)
            try:
                await self.seal_now()
                async with self._db.connection() as conn:
                    AUDIT_UNSEALED.set(await count_unsealed(conn))
            except UNAVAILABLE:
                log.warning("audit_sealer_database_unavailable")
            except Exception as error:  # keep sealing alive; the next round retries
                log.error("audit_sealer_failed", error_type=type(error).__name__)
            await asyncio.sleep(self._min_interval)
