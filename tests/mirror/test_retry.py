"""Raptor failing or hanging: backoff, a kept backlog, and an in-order drain on recovery."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace

from raxx_queue.db.pool import Transaction
from raxx_queue.mirror.rows import refresh_mirror
from tests.mirror.conftest import MirrorApp
from tests.mirror.steps import (
    FAST,
    add_customer,
    assert_in_order,
    change,
    holds_versions,
    mirror_state,
    nudge,
    stripe_id,
    versions,
)
from tests.peers.raptor_receiver import Push, RaptorReceiver
from tests.support.database import Conn

CUSTOMERS = [f"cust_{n}" for n in range(6)]


def failed_attempts(count: int) -> object:
    return lambda pushes: sum(push.status == 500 for push in pushes) >= count


def attempt_times(pushes: list[Push], customer: str) -> list[float]:
    return [p.received_at for p in pushes if p.rows and p.rows[0]["queue_customer_id"] == customer]


async def test_raptor_500_backs_off_keeps_the_backlog_and_drains_in_order(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    for customer in CUSTOMERS:
        await add_customer(db, customer)
    receiver.fail(500)
    async with mirror_app() as client:
        await receiver.await_for(failed_attempts(12), timeout=10)
        # changes keep coming while Raptor is down
        for customer in CUSTOMERS[:3]:
            await change(db, customer)
            await change(db, customer)
            nudge(client)
        await receiver.await_for(failed_attempts(18), timeout=10)

        for customer in CUSTOMERS:
            state = await mirror_state(db, customer)
            assert state["pushed_version"] == 0  # nothing counted as delivered
        failed = await db.fetch(
            "SELECT push_attempts, last_push_error FROM billing_subscription_mirror"
            " WHERE push_attempts > 0"
        )
        assert failed
        assert {row["last_push_error"] for row in failed} == {"HTTP 500"}
        assert not receiver.rows

        receiver.recover()
        expected = await versions(db)
        await receiver.await_for(holds_versions(expected), timeout=10)

    assert {key: row["version"] for key, row in receiver.rows.items()} == expected
    assert_in_order(receiver.pushes)
    # one row retried on its own is spaced by at least half of each backoff step
    busiest = max(CUSTOMERS, key=lambda c: len(attempt_times(receiver.pushes, c)))
    times = attempt_times(receiver.pushes, busiest)
    assert len(times) >= 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= FAST.retry_base / 2 * 0.9


async def test_while_raptor_is_down_it_is_probed_one_row_at_a_time(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    for number in range(40):
        await add_customer(db, f"cust_{number}")
    receiver.fail(503)
    async with mirror_app():
        pushes = await receiver.await_for(
            lambda pushes: sum(p.status == 503 for p in pushes) >= 16, timeout=10
        )
        # the first round tries a whole batch; after that one probe per paused round
        arrivals = sorted(push.received_at for push in pushes)
        probes = arrivals[FAST.batch_size - 1 :]
        gaps = [later - earlier for earlier, later in itertools.pairwise(probes)]
        assert min(gaps) >= FAST.outage_pause_base / 2 * 0.9
        receiver.recover()
        expected = await versions(db)
        await receiver.await_for(holds_versions(expected), timeout=10)
    assert len(receiver.rows) == 40


async def test_a_hanging_raptor_never_blocks_writers_of_the_row(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    await add_customer(db, "cust_1")
    config = replace(FAST, request_timeout=0.5, lease_seconds=3.0)
    receiver.hang()
    async with mirror_app(config=config) as client:
        await receiver.await_for(lambda pushes: len(pushes) == 1)  # held, lease taken

        # a webhook-like transaction on the same row, with a push in flight
        started = time.monotonic()
        async with db.transaction():
            await db.execute("SET LOCAL lock_timeout = '200ms'")
            await db.execute(
                "UPDATE billing_subscription SET status = 'past_due', grace_until = now()"
                " + interval '3 days' WHERE stripe_customer_id = $1",
                stripe_id("cust_1"),
            )
            assert (await refresh_mirror(Transaction(db), "cust_1")).changed
        assert time.monotonic() - started < 0.2
        nudge(client)

        # the held push times out and is retried with the newest version
        await receiver.await_for(lambda pushes: len(pushes) >= 3, timeout=10)
        state = await mirror_state(db, "cust_1")
        assert state["last_push_error"] == "timeout"
        assert state["pushed_version"] == 0

        receiver.recover()
        newest = await change(db, "cust_1")
        nudge(client)
        await receiver.await_for(holds_versions({"cust_1": newest}), timeout=10)
    assert receiver.rows["cust_1"]["version"] == newest
    assert receiver.rows["cust_1"]["status"] == "past_due"
    assert_in_order(receiver.pushes)


async def test_a_refused_row_does_not_hold_back_the_others(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    await add_customer(db, "cust_refused")
    receiver.fail(422, times=1)
    async with mirror_app() as client:
        await receiver.await_for(lambda pushes: any(p.status == 422 for p in pushes))
        await add_customer(db, "cust_ok")
        nudge(client)
        await receiver.await_for(holds_versions({"cust_ok": 1, "cust_refused": 1}))
    state = await mirror_state(db, "cust_refused")
    assert state["pushed_version"] == 1
    assert state["push_attempts"] == 0
    assert state["last_push_error"] is None


async def test_lost_database_connections_do_not_stop_the_dispatcher(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    await add_customer(db, "cust_1")
    async with mirror_app() as client:
        await receiver.await_for(holds_versions({"cust_1": 1}))
        killed = await db.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        assert killed >= 1  # the app's pooled connections
        newest = await change(db, "cust_1")
        nudge(client)
        # well before the lease (5 s) of a result that could not be recorded runs out
        await receiver.await_for(holds_versions({"cust_1": newest}), timeout=4.5)
