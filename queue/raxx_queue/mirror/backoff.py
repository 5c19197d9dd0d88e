"""Retry delays for mirror pushes: capped exponential backoff with jitter."""

from __future__ import annotations

import random


def retry_delay(
    attempts: int, *, base: float, cap: float, rng: random.Random | None = None
) -> float:
    """Seconds before retry number `attempts` (1 = after the first failure).

    Equal jitter: half of the capped exponential step is kept, the other half is random,
    so retries of many rows spread out without ever collapsing to zero.
    """
    step = min(cap, base * 2.0 ** min(max(attempts - 1, 0), 62))
    return step / 2 + (rng or random).uniform(0, step / 2)
