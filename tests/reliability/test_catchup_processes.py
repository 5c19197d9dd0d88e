"""Two service processes, each with its catch-up worker, on one database: one run at a time.

Both start with the catch-up due every second, against a Stripe that answers slowly,
so their turns keep colliding; the runs they record never overlap, and every missed
event is applied once. Directly, and through PgBouncer in transaction mode, where no
session outlives a transaction: the lease is a row, not a session lock.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.server import StripeServer
from tests.reliability.conftest import Route
from tests.reliability.streams import serving
from tests.support import values
from tests.support.catchup import recent_stream
from tests.support.database import Conn

pytestmark = pytest.mark.slow

RUNS = 6


async def test_two_processes_take_turns_and_apply_each_missed_event_once(
    route: Route, db: Conn, stripe_double: StripeDouble
) -> None:
    stream = recent_stream(4, span=1800)
    for event in stream:
        stripe_double.add_event(event, delivered=False)
    stripe_double.delay("/v1/events", 0.05)
    finished = "SELECT count(*) FROM billing_job_run WHERE finished_at IS NOT NULL"
    with StripeServer(stripe_double) as stripe_server:
        env = {
            **route.env,
            "STRIPE_RESTRICTED_KEY": values.STRIPE_KEY,
            "STRIPE_API_BASE": stripe_server.url,
            "STRIPE_EVENT_CATCHUP_SECONDS": "1",
            "LOG_LEVEL": "INFO",
        }
        async with serving(route.url, **env), serving(route.url, **env):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 90
            while await db.fetchval(finished) < RUNS:
                assert loop.time() < deadline, "the catch-up did not run often enough"
                await asyncio.sleep(0.2)  # other processes' work: nothing to await
    runs = await db.fetch(
        "SELECT holder, started_at, finished_at, outcome FROM billing_job_run"
        " WHERE finished_at IS NOT NULL ORDER BY started_at"
    )
    assert len(runs) >= RUNS
    for earlier, later in itertools.pairwise(runs):
        assert earlier["finished_at"] <= later["started_at"], (dict(earlier), dict(later))
    assert {r["outcome"] for r in runs} <= {"ok", "stopped"}
    recorded = await db.fetch("SELECT event_id, source FROM processed_stripe_events")
    assert sorted(r["event_id"] for r in recorded) == sorted(e["id"] for e in stream)
    assert {r["source"] for r in recorded} == {"catchup"}
    twice = await db.fetchval(
        "SELECT count(*) FROM (SELECT event_id FROM billing_action_log"
        " GROUP BY event_id HAVING count(*) > 1) AS t"
    )
    assert twice == 0
    pids = {r["holder"].split(":")[1] for r in runs}
    print(
        f"two processes ({route.name}): {len(runs)} catch-up runs by {len(pids)} processes,"
        " none overlapping"
    )
