"""Two service processes on one database receive the same stream, each in its own order.

Stripe may deliver an event to any dyno, and again to another: every event is sent to
both processes (so each is a duplicate across them, on top of the stream's own
duplicates). One effect per event, one audit chain, no deadlock.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from tests.reliability.conftest import Route, Stream, assert_state
from tests.reliability.streams import (
    Deliveries,
    assert_exactly_once,
    audit_verify,
    deliver_all,
    serving,
    wait_sealed,
)
from tests.support.database import Conn
from tests.support.event_stream import snapshot
from tests.support.log_hygiene import SESSION_LOGS

pytestmark = pytest.mark.slow

DEADLOCKS = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"


async def test_two_processes_one_effect_per_event_one_chain(
    clean_db: str, db: Conn, stream: Stream, route: Route
) -> None:
    deadlocks_before = await db.fetchval(DEADLOCKS)
    other_order = random.Random(5).sample(stream.deliveries, len(stream.deliveries))
    a, b = Deliveries(), Deliveries()
    async with (
        serving(route.url, LOG_LEVEL="INFO", **route.env) as first,
        serving(route.url, LOG_LEVEL="INFO", **route.env) as second,
    ):
        await asyncio.gather(
            deliver_all(first.url, stream.deliveries, a, concurrency=8),
            deliver_all(second.url, other_order, b, concurrency=8),
        )
        await wait_sealed(db)
    # every delivery succeeded: no deadlock, no serialisation failure, no 5xx at all
    assert set(a.statuses) == {200}
    assert set(b.statuses) == {200}

    # per event, exactly one delivery (of all four or so) took effect
    for event in stream.in_order:
        outcomes = Counter(a.acked[event["id"]] + b.acked[event["id"]])
        assert outcomes["duplicate"] == sum(outcomes.values()) - 1, outcomes

    merged = Deliveries(acked={**a.acked, **b.acked})
    assert_state(await snapshot(db), stream)
    await assert_exactly_once(db, stream.in_order, merged)
    forks = await db.fetchval(
        "SELECT count(*) FROM (SELECT prev_hash FROM billing_action_log"
        " GROUP BY prev_hash HAVING count(*) > 1) AS f"
    )
    assert forks == 0
    report = audit_verify(clean_db)
    assert report["ok"] is True
    assert report["rows"] == await db.fetchval("SELECT count(*) FROM billing_action_log")

    # the services have exited, so their sessions' statistics are flushed
    assert await db.fetchval(DEADLOCKS) == deadlocks_before
    service_lines = [line for source, line in SESSION_LOGS.lines() if source.startswith("serve:")]
    assert not [line for line in service_lines if "deadlock" in line.lower()]
    outcomes = Counter(o for acked in (a.acked, b.acked) for os_ in acked.values() for o in os_)
    deliveries = sum(outcomes.values())
    print(f"two processes ({route.name}): {deliveries} deliveries, outcomes {dict(outcomes)}")
