"""Background workers and their in-process wake-ups (a commit says there is work now)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Protocol

from raxx_queue.db.pool import Effects


class BackgroundWorker(Protocol):
    """A job the app lifespan starts and stops."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


class Wakeup:
    """A level-triggered nudge; waiting returns early when nudged, else after a timeout."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def nudge(self) -> None:
        self._event.set()

    async def wait(self, timeout: float) -> bool:
        """Wait up to timeout seconds; True if nudged. Clears the nudge."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._event.wait()
        nudged = self._event.is_set()
        self._event.clear()
        return nudged


@dataclass(frozen=True)
class Wakeups:
    """The process's wake-ups, and the one place a committed write's effects become
    nudges: the database calls `after_commit` with what the transaction reported.
    Other processes find the same work by polling."""

    audit: Wakeup = field(default_factory=Wakeup)
    mirror: Wakeup = field(default_factory=Wakeup)

    def after_commit(self, effects: Effects) -> None:
        if effects.audited:
            self.audit.nudge()
        if effects.mirror_changed:
            self.mirror.nudge()
