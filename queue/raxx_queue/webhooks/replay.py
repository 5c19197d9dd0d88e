"""Replaying events Stripe could not deliver, through the webhook pipeline (dedupe included)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from raxx_queue.db.events import known_event_ids
from raxx_queue.db.pool import Database
from raxx_queue.errors import ServiceError
from raxx_queue.settings import ConfigError
from raxx_queue.stripe_gateway import StripeGateway
from raxx_queue.webhooks.errors import ReplayStopped
from raxx_queue.webhooks.pipeline import EventContext, apply_stripe_event

Json = dict[str, Any]
MAX_AGE_SECONDS = 30 * 86_400  # Stripe keeps events for 30 days
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}


def parse_since(text: str) -> int:
    """'3d', '6h', '90m' → seconds (at most 30 days)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ConfigError("--since: use a number and a unit, e.g. 6h or 3d")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if not 0 < seconds <= MAX_AGE_SECONDS:
        raise ConfigError("--since: between 1s and 30d (Stripe keeps events for 30 days)")
    return seconds


@dataclass
class ReplayReport:
    listed: int = 0
    already_processed: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> Json:
        return {
            "listed": self.listed,
            "already_processed": self.already_processed,
            "outcomes": dict(self.outcomes),
        }


async def list_events(
    stripe: StripeGateway, created_gte: int, *, undelivered_only: bool = True
) -> list[Json]:
    """Every event since created_gte, oldest first (Stripe lists newest first)."""
    events: list[Json] = []
    starting_after: str | None = None
    while True:
        page = await stripe.list_events(
            created_gte=created_gte,
            starting_after=starting_after,
            limit=100,
            delivery_success=False if undelivered_only else None,
        )
        events += page.data
        if not page.has_more or not page.data:
            break
        starting_after = str(page.data[-1]["id"])
    return sorted(events, key=lambda e: (int(e.get("created", 0)), str(e.get("id"))))


async def replay_events(
    db: Database,
    stripe: StripeGateway,
    events: list[Json],
    context: EventContext,
    on_progress: Callable[[int, int], None] | None = None,
) -> ReplayReport:
    """Apply the events not yet processed, oldest first; stop at the first failure."""
    report = ReplayReport(listed=len(events))
    async with db.connection() as conn:
        known = await known_event_ids(conn, [str(e.get("id")) for e in events])
    report.already_processed = len(known)
    pending = [e for e in events if e.get("id") not in known]
    for done, event in enumerate(pending, start=1):
        try:
            result = await apply_stripe_event(db, event, context, stripe)
        except ServiceError as error:
            raise ReplayStopped(str(event.get("id")), error.code) from None
        report.outcomes[result.outcome] += 1
        if on_progress is not None:
            on_progress(done, len(pending))
    return report
