"""Caps on what anonymous clients can make Queue write (docs/security.md, finding 4).

A refused request (a bad webhook signature, a missing token, an unknown route) costs
its sender one request and Queue a log line or two and a Sentry event: without a cap,
anyone can fill the logs and spend the Sentry quota. Log lines of refused requests are
capped per source and overall; security events to Sentry per kind. Counters stay exact
(the metrics are counted before any of this); what was left out is counted and told by
the next line that is written.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field

from raxx_queue.metrics import SUPPRESSED

# the client a request comes from (see source_of); set by the request middleware
current_source: ContextVar[str] = ContextVar("current_source", default="unknown")


@dataclass
class Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimit:
    """Token buckets per key (at most `max_keys`, least recently used dropped) under one
    bucket shared by every key, so that a sender who varies its key gains nothing."""

    kind: str
    per_key_rate: float  # tokens a second
    per_key_burst: float
    total_rate: float
    total_burst: float
    max_keys: int = 4096
    clock: Callable[[], float] = time.monotonic
    _keys: OrderedDict[str, Bucket] = field(default_factory=OrderedDict)
    _total: Bucket | None = None
    _suppressed: int = 0

    def _take(self, bucket: Bucket, rate: float, burst: float, now: float) -> bool:
        bucket.tokens = min(burst, bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def allow(self, key: str) -> bool:
        """Whether one more line (or event) for `key` may be written now."""
        now = self.clock()
        bucket = self._keys.pop(key, None) or Bucket(self.per_key_burst, now)
        self._keys[key] = bucket
        if len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        if self._total is None:
            self._total = Bucket(self.total_burst, now)
        allowed = self._take(bucket, self.per_key_rate, self.per_key_burst, now)
        allowed = allowed and self._take(self._total, self.total_rate, self.total_burst, now)
        if not allowed:
            self._suppressed += 1
            SUPPRESSED.labels(kind=self.kind).inc()
        return allowed

    def take_suppressed(self) -> int:
        """How many were left out since the last call (told by the next line written)."""
        count, self._suppressed = self._suppressed, 0
        return count

    def reset(self) -> None:
        self._keys.clear()
        self._total = None
        self._suppressed = 0


# Per process: a burst of 20 lines from one source, then one every 2 seconds; 200 over
# all sources, then 10 a second.
REFUSED_REQUEST_LINES = RateLimit(
    "log_line", per_key_rate=0.5, per_key_burst=20, total_rate=10, total_burst=200
)
# Sentry events of one kind (e.g. `stripe webhook rejected:bad_signature`): 5, then one a
# minute; 20, then one every 10 seconds over all kinds.
SECURITY_EVENTS = RateLimit(
    "sentry_event", per_key_rate=1 / 60, per_key_burst=5, total_rate=0.1, total_burst=20
)


def source_of(headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None) -> str:
    """The sending client: the last X-Forwarded-For entry (Heroku's router appends the
    address it saw, and a client cannot change what comes after its own entries), else
    the socket's peer."""
    for name, value in headers:
        if name == b"x-forwarded-for":
            return bytes(value).decode("latin-1").rsplit(",", 1)[-1].strip()[:64] or "unknown"
    return client[0] if client else "unknown"
