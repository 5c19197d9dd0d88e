"""Reading Stripe's Events API for the catch-up: paced, and patient with a busy Stripe.

Every request waits its turn (a steady rate, well under Stripe's read limit of 25
requests a second in test mode and 100 live, which the rest of Queue shares) and renews
the caller's lease first. A 429, a 5xx or no answer at all is retried after a capped,
jittered backoff, or after Stripe's `Retry-After` when it says more (the SDK itself
retries 5xx and network errors twice, and 429s never); past the last attempt the error
goes to the caller, which ends its run with nothing half-written.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from raxx_queue.mirror.backoff import retry_delay
from raxx_queue.pacing import Pacer
from raxx_queue.stripe_errors import StripeUnavailable
from raxx_queue.stripe_gateway import StripeGateway, StripePage
from raxx_queue.webhooks.changes import EVENT_BUILDERS

log = structlog.get_logger(__name__)

Json = dict[str, Any]
# `types[]` takes at most 20 names: more are listed in groups.
MAX_TYPES_PER_LIST = 20
PAGE_SIZE = 100
HANDLED_TYPES: tuple[str, ...] = tuple(sorted(EVENT_BUILDERS))


def type_groups(types: Sequence[str]) -> list[list[str]]:
    """The names in groups Stripe's `types[]` accepts."""
    ordered = sorted(set(types))
    return [ordered[i : i + MAX_TYPES_PER_LIST] for i in range(0, len(ordered), MAX_TYPES_PER_LIST)]


@dataclass(frozen=True)
class ReaderConfig:
    rate: float  # requests per second
    attempts: int  # per request, the first included
    backoff_base: float
    backoff_cap: float
    max_wait: float  # the longest single wait, Retry-After included


@dataclass
class ReadStats:
    requests: int = 0
    retries: int = 0
    rate_limited: int = 0
    last_status: int | None = None  # Stripe's status on the last failed attempt


class EventReader:
    """Paced, retried reads of the events of `types`."""

    def __init__(
        self,
        stripe: StripeGateway,
        config: ReaderConfig,
        *,
        keepalive: Callable[[], Awaitable[None]],
        sleep: Callable[[float], Awaitable[None]],
        types: Sequence[str] = HANDLED_TYPES,
    ) -> None:
        self._stripe = stripe
        self._config = config
        self._keepalive = keepalive
        self._sleep = sleep
        self._pace = Pacer(config.rate)
        self._groups = type_groups(types)
        self.stats = ReadStats()

    async def newest_created(self) -> int | None:
        """`created` of the newest listable event of these types, if any."""
        newest: int | None = None
        for group in self._groups:
            page = await self._call(
                functools.partial(self._stripe.list_events, limit=1, types=group)
            )
            for event in page.data:
                created = int(event.get("created", 0))
                newest = created if newest is None else max(newest, created)
        return newest

    async def pages(self, gte: int, lt: int, *, undelivered: bool) -> AsyncIterator[list[Json]]:
        """Every event created in [gte, lt), a page at a time, newest first per type group;
        only those Stripe has not delivered everywhere when `undelivered`."""
        for group in self._groups:
            after: str | None = None
            while True:
                page = await self._call(
                    functools.partial(
                        self._stripe.list_events,
                        created_gte=gte,
                        created_lt=lt,
                        types=group,
                        starting_after=after,
                        limit=PAGE_SIZE,
                        delivery_success=False if undelivered else None,
                    )
                )
                if page.data:
                    yield page.data
                if not page.has_more or not page.data:
                    break
                after = str(page.data[-1]["id"])

    async def _call(self, request: Callable[[], Awaitable[StripePage]]) -> StripePage:
        for attempt in itertools.count(1):
            await self._keepalive()
            await self._pace()
            self.stats.requests += 1
            try:
                return await request()
            except StripeUnavailable as error:
                self.stats.last_status = error.http_status
                if error.http_status == 429:
                    self.stats.rate_limited += 1
                if attempt >= self._config.attempts:
                    raise
                delay = self._delay(attempt, error.retry_after)
                self.stats.retries += 1
                log.warning(
                    "catchup_stripe_backoff",
                    http_status=error.http_status,
                    attempt=attempt,
                    delay_seconds=round(delay, 3),
                )
                await self._sleep(delay)
        raise AssertionError("unreachable")

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = retry_delay(attempt, base=self._config.backoff_base, cap=self._config.backoff_cap)
        return min(max(backoff, retry_after or 0.0), self._config.max_wait)
