"""One catch-up run at a time across processes: a lease row, not a session lock."""

from __future__ import annotations

import asyncio

import httpx
import orjson

from raxx_queue.simulator.double import StripeDouble
from tests.conftest import make_settings, running_app
from tests.support.catchup import catchup_config, recent_stream, worker
from tests.support.database import Conn


class GatedTransport(httpx.AsyncBaseTransport):
    """Holds every request at a gate until the test opens it (a slow Stripe, on cue)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.arrived = asyncio.Event()
        self.opened = asyncio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.arrived.set()
        await self.opened.wait()
        return await self.inner.handle_async_request(request)


async def test_while_one_process_runs_the_catchup_another_does_not(
    clean_db: str, db: Conn, stripe_double: StripeDouble
) -> None:
    for event in recent_stream(2, span=600):
        stripe_double.add_event(event, delivered=False)
    gate = GatedTransport(stripe_double.transport)
    settings = make_settings(clean_db, stripe_event_catchup_seconds=300)
    async with (
        running_app(settings, stripe_transport=gate, catchup_config=catchup_config()) as first,
        running_app(
            settings, stripe_transport=stripe_double.transport, catchup_config=catchup_config()
        ) as second,
    ):
        running = asyncio.create_task(worker(first).run_once(force=True))
        await asyncio.wait_for(gate.arrived.wait(), 10)
        while_held = await worker(second).run_once(force=True)
        requests_while_held = len(stripe_double.requests)
        gate.opened.set()
        report = await asyncio.wait_for(running, 30)
        not_due = await worker(second).run_once()
        forced = await worker(second).run_once(force=True)

    assert while_held is None
    assert requests_while_held == 0
    assert report is not None
    assert report.outcome == "ok"
    assert not_due is None
    assert forced is not None
    assert forced.outcome == "ok"
    assert forced.applied_count == 0
    runs = await db.fetch(
        "SELECT holder, started_at, finished_at, outcome FROM billing_job_run ORDER BY id"
    )
    assert [r["outcome"] for r in runs] == ["ok", "ok"]
    assert runs[0]["finished_at"] <= runs[1]["started_at"]
    assert runs[0]["holder"] != runs[1]["holder"]


async def test_a_run_that_outlived_its_lease_can_no_longer_move_the_checkpoint(
    clean_db: str, db: Conn, stripe_double: StripeDouble
) -> None:
    stream = recent_stream(2, span=600)
    for event in stream:
        stripe_double.add_event(event, delivered=False)
    gate = GatedTransport(stripe_double.transport)
    settings = make_settings(clean_db, stripe_event_catchup_seconds=300)
    async with (
        running_app(settings, stripe_transport=gate, catchup_config=catchup_config()) as stalled,
        running_app(
            settings, stripe_transport=stripe_double.transport, catchup_config=catchup_config()
        ) as other,
    ):
        late = asyncio.create_task(worker(stalled).run_once(force=True))
        await asyncio.wait_for(gate.arrived.wait(), 10)
        # the stalled run's lease runs out; another process takes the job over
        await db.execute("UPDATE billing_job_lease SET lease_until = now() - interval '1 second'")
        took_over = await worker(other).run_once(force=True)
        checkpoint = await db.fetchval("SELECT position FROM billing_job_checkpoint")
        gate.opened.set()
        outlived = await asyncio.wait_for(late, 30)
        after = await db.fetchval("SELECT position FROM billing_job_checkpoint")
        lease = await db.fetchrow(
            "SELECT holder, next_run_at > now() AS scheduled FROM billing_job_lease"
        )

    assert took_over is not None
    assert took_over.outcome == "ok"
    assert took_over.applied_count == len(stream)
    assert outlived is not None
    assert outlived.outcome == "lease_lost"
    assert outlived.applied_count == 0  # what it found was applied already: duplicates
    assert after == checkpoint
    assert orjson.loads(after)["through"] > 0
    # the stalled run gave back nothing it no longer held
    assert dict(lease) == {"holder": None, "scheduled": True}
    outcomes = await db.fetch("SELECT outcome FROM billing_job_run ORDER BY id")
    assert [r["outcome"] for r in outcomes] == ["lease_lost", "ok"]
