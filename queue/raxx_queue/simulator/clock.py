"""The simulator's clock: the wall clock, moved on by `advance` (Stripe's test clocks)."""

from __future__ import annotations

import threading
import time


class SimulatedClock:
    """A callable clock that time.time() runs on, plus whatever was advanced."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return time.time() + self._offset

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += seconds

    @property
    def offset(self) -> float:
        return self._offset
