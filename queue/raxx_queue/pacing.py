"""Client-side pacing of Stripe reads for long operator jobs (Stripe rate-limits per key)."""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """At most `rate` calls per second, evenly spaced."""

    def __init__(self, rate: float) -> None:
        self._interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def __call__(self) -> None:
        now = time.monotonic()
        wait = self._next - now
        self._next = max(now, self._next) + self._interval
        if wait > 0:
            await asyncio.sleep(wait)
