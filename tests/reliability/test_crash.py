"""SIGKILL in the middle of a stream of webhooks, then restart and Stripe's redelivery."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable

import pytest

from tests.reliability.conftest import Route, Stream, assert_state
from tests.reliability.streams import (
    Deliveries,
    assert_exactly_once,
    audit_verify,
    deliver_all,
    redeliver,
    wait_ready,
    wait_sealed,
)
from tests.support.database import Conn
from tests.support.event_stream import snapshot
from tests.support.process import running_service, start_service

# a service process started twice, a stream and a full redelivery: minutes on a busy 2-core box
pytestmark = [pytest.mark.slow, pytest.mark.timeout(480)]


LOCK = "SELECT pg_advisory_lock(billing_customer_lock_key('cus_5'))"
UNLOCK = "SELECT pg_advisory_unlock(billing_customer_lock_key('cus_5'))"
WAITING_FOR_LOCK = """
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'
"""
# Sessions still running a statement: a waiting webhook's commit among them. A session
# the frozen process left idle in a transaction can never commit, nor can one waiting
# for that process's next protocol message (behind a transaction pooler every statement
# is two round trips, so a freeze often lands between them), nor one waiting for a lock
# either of those holds: they do not count.
RUNNING = """
WITH RECURSIVE stuck(pid) AS (
    SELECT pid FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid()
       AND (state LIKE 'idle in transaction%' OR (state = 'active' AND wait_event = 'ClientRead'))
    UNION
    SELECT a.pid FROM pg_stat_activity AS a JOIN stuck ON stuck.pid = ANY (pg_blocking_pids(a.pid))
)
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
   AND pid NOT IN (SELECT pid FROM stuck)
"""


ACTIVITY = """
SELECT pid, state, wait_event_type, wait_event, backend_xid IS NOT NULL AS writing,
       left(query, 80) AS query
  FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


async def until(db: Conn, query: str, done: Callable[[int], bool], timeout: float = 60) -> None:
    """Poll another process's progress (nothing to await); on time-out, say what the
    database's sessions were doing."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not done(await db.fetchval(query)):
        if loop.time() > deadline:
            sessions = [dict(r) for r in await db.fetch(ACTIVITY)]
            raise AssertionError(f"not reached in {timeout}s: {query.split()[1:4]} {sessions}")
        await asyncio.sleep(0.01)


async def test_sigkill_mid_stream_then_redelivery_applies_everything_once(
    clean_db: str, db: Conn, stream: Stream, route: Route
) -> None:
    # more connections than deliveries in flight: the ones held up on the lock never
    # starve the rest of the stream
    service = start_service(route.url, LOG_LEVEL="INFO", DATABASE_POOL_SIZE="24", **route.env)
    result = Deliveries()
    # one customer's events wait in Postgres, inside their transactions, for this lock
    await db.execute(LOCK)
    try:
        await wait_ready(service.url)

        async def crash_when_a_third_is_acknowledged() -> None:
            while len(result.acked) < len(stream.in_order) // 3:
                await asyncio.sleep(0.005)  # watching our own counters
            await until(db, WAITING_FOR_LOCK, lambda waiting: waiting > 0)
            # freeze the service, let the waiting transactions commit, then kill it: they
            # are committed, and their answers never leave the process
            service.process.send_signal(signal.SIGSTOP)
            await db.execute(UNLOCK)
            await until(db, RUNNING, lambda running: running == 0)
            service.process.kill()

        killer = asyncio.create_task(crash_when_a_third_is_acknowledged())
        await deliver_all(service.url, stream.deliveries, result, concurrency=16)
        # every delivery has been answered or cut off: the kill happened, or never will
        await asyncio.wait_for(killer, timeout=60)
    finally:
        if service.process.poll() is None:
            service.process.kill()
        service.process.wait()
    assert service.process.returncode == -9

    acked_before = set(result.acked)
    recorded = {
        r["event_id"] for r in await db.fetch("SELECT event_id FROM processed_stripe_events")
    }
    # a request cut off by the kill may have committed without an answer: Stripe retries
    # it and it must come back as a duplicate; an acknowledged one is always committed
    assert acked_before <= recorded
    assert 0 < len(acked_before) < len(stream.in_order)
    committed_unacked = recorded - acked_before
    assert committed_unacked
    unacked = len(result.failed)

    with running_service(route.url, LOG_LEVEL="INFO", **route.env) as restarted:
        await redeliver(restarted.url, result)
        outcomes = {e: result.acked[e][-1] for e in committed_unacked}
        assert set(outcomes.values()) <= {"duplicate"}
        await wait_sealed(db)

    assert_state(await snapshot(db), stream)
    await assert_exactly_once(db, stream.in_order, result)
    report = audit_verify(clean_db)
    assert report["ok"] is True
    assert report["unsealed"] == 0
    print(
        f"crash ({route.name}): {len(acked_before)}/{len(stream.in_order)} events"
        " acknowledged before SIGKILL,"
        f" {len(committed_unacked)} committed but unanswered, {unacked} redelivered;"
        f" audit chain of {report['rows']} rows verifies"
    )
