"""The catch-up worker under test: an app that runs it on demand, and the stream it misses."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.webhooks.catchup import Window
from raxx_queue.webhooks.catchup_worker import CatchupConfig, EventCatchup
from raxx_queue.webhooks.changes import EVENT_BUILDERS
from tests.conftest import AppClient, make_settings, running_app
from tests.support import values
from tests.support.event_stream import customer_lifecycle

Event = dict[str, Any]


@dataclass
class Sleeps:
    """The worker's backoff waits, recorded and skipped."""

    delays: list[float] = field(default_factory=list)

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


def catchup_config(sleeps: Sleeps | None = None, **overrides: Any) -> CatchupConfig:
    """Runs only when a test calls run_once; no pacing, no real backoff waits."""
    options: dict[str, Any] = {
        "autostart": False,
        "rate": 0.0,
        "sleep": sleeps or Sleeps(),
        "window": Window(),
    }
    options.update(overrides)
    return CatchupConfig(**options)


@asynccontextmanager
async def catchup_app(
    database_url: str,
    double: StripeDouble,
    config: CatchupConfig | None = None,
    **settings: Any,
) -> AsyncIterator[AppClient]:
    """The app with the catch-up on (every 300 s unless told), talking to `double`."""
    options: dict[str, Any] = {"stripe_event_catchup_seconds": 300}
    options.update(settings)
    async with running_app(
        make_settings(database_url, **options),
        stripe_transport=double.transport,
        catchup_config=config or catchup_config(),
    ) as client:
        yield client


def worker(client: AppClient) -> EventCatchup:
    catchup = client.services.workers.catchup
    assert catchup is not None, "the catch-up is not running in this app"
    return catchup


def recent_stream(customers: int, *, span: int, end: int | None = None) -> list[Event]:
    """Lifecycles of `customers` customers (events of the types Queue handles), in the
    order Stripe created them, spread over the `span` seconds before `end`."""
    events = [
        e for k in range(customers) for e in customer_lifecycle(k) if e["type"] in EVENT_BUILDERS
    ]
    first, last = events[0]["created"], events[-1]["created"]
    end = int(time.time()) - 30 if end is None else end
    scale = span / max(1, last - first)
    rebased = []
    for event in events:
        moved = copy.deepcopy(event)
        moved["created"] = end - span + int((event["created"] - first) * scale)
        rebased.append(moved)
    return rebased


async def audit_verified(client: AppClient) -> dict[str, Any]:
    """Seal what is pending, then walk the chain as Console would."""
    sealer = client.services.workers.sealer
    assert sealer is not None
    await sealer.seal_now()
    response = await client.get("/api/internal/billing/audit/verify", headers=values.CONSOLE)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report
