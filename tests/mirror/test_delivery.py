"""A committed mirror change reaches Raptor once, promptly, newest version, no PII."""

from __future__ import annotations

import statistics
import time

import httpx

from raxx_queue.metrics import render_latest
from raxx_queue.mirror.rows import MIRROR_FIELDS
from tests.mirror.conftest import MirrorApp
from tests.mirror.steps import (
    EMAIL,
    NAME,
    STREET,
    accepted_version,
    add_customer,
    assert_in_order,
    change,
    mirror_state,
    nudge,
    received,
)
from tests.peers.raptor_receiver import RaptorReceiver
from tests.support import values
from tests.support.database import Conn
from tests.support.logs import CapturedLogs


async def barrier(db: Conn, client: httpx.AsyncClient, receiver: RaptorReceiver) -> None:
    """Return once the dispatcher has finished every round started before this call.

    A change to another customer is pushed in a later round, and rounds record their
    results before the next one claims.
    """
    version = await change(db, "cust_barrier")
    nudge(client)
    await receiver.await_for(accepted_version("cust_barrier", version))


async def test_change_reaches_raptor_once_with_its_version(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    await add_customer(db, "cust_1")
    await add_customer(db, "cust_barrier")
    async with mirror_app() as client:
        await receiver.await_for(accepted_version("cust_1", 1))

        version = await change(db, "cust_1")
        committed = time.monotonic()
        nudge(client)
        pushes = await receiver.await_for(accepted_version("cust_1", version))
        arrival = next(p for p in pushes if p.rows and p.rows[0]["version"] == version)
        assert arrival.received_at - committed < 1.0

        await barrier(db, client, receiver)
        assert received(receiver.pushes, "cust_1") == [1, 2]
        state = await mirror_state(db, "cust_1")
        assert state["pushed_version"] == state["version"] == 2
        assert state["push_lease_until"] is None
        assert state["last_pushed_at"] is not None
        assert state["last_push_error"] is None
    assert receiver.rows["cust_1"]["version"] == 2


async def test_rows_waiting_at_start_up_are_pushed_without_a_nudge(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    for number in range(20):
        await add_customer(db, f"cust_{number}")
    async with mirror_app():
        await receiver.await_for(lambda _: len(receiver.rows) == 20)
    assert all(row["version"] == 1 for row in receiver.rows.values())


async def test_pending_changes_coalesce_to_the_newest_version(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    await add_customer(db, "cust_1")
    receiver.hang(times=1)
    async with mirror_app() as client:
        await receiver.await_for(lambda pushes: len(pushes) == 1)  # version 1, held
        newest = 0
        for _ in range(3):
            newest = await change(db, "cust_1")
            nudge(client)
        receiver.release()
        await receiver.await_for(accepted_version("cust_1", newest))
    # 2 and 3 were superseded before they could be pushed
    assert received(receiver.pushes, "cust_1") == [1, newest]
    assert receiver.rows["cust_1"]["version"] == newest == 4


async def test_pushed_json_holds_exactly_the_mirror_fields_and_no_pii(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver, captured_logs: CapturedLogs
) -> None:
    await add_customer(db, "cust_pii", plan_tier="pro_plus")
    async with mirror_app() as client:
        await receiver.await_for(accepted_version("cust_pii", 1))
        await change(db, "cust_pii")
        nudge(client)
        await receiver.await_for(accepted_version("cust_pii", 2))

    for push in receiver.pushes:
        assert push.method == "POST"
        assert push.authorized
        assert push.headers["authorization"] == f"Bearer {values.MIRROR_TOKEN}"
        assert push.headers["content-type"] == "application/json"
        assert set(push.body) == set(MIRROR_FIELDS)
        for pii in (EMAIL, NAME, STREET, "Springfield", "cus_cust_pii"):
            assert pii.encode() not in push.raw
    row = receiver.rows["cust_pii"]
    assert row["plan_tier"] == "pro_plus"
    assert row["status"] == "active"
    assert row["entitled"] is True
    assert row["feature_locked_at"] is None
    captured_logs.assert_free_of([*values.SECRETS, EMAIL, NAME, STREET])


async def test_push_latency_after_commit(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    """Commit to Raptor receipt, woken by the commit's nudge (reported in docs/mirror.md)."""
    customers = [f"cust_{n}" for n in range(10)]
    for customer in customers:
        await add_customer(db, customer)
    latencies = []
    async with mirror_app() as client:
        await receiver.await_for(lambda _: len(receiver.rows) == len(customers))
        for _ in range(20):
            for customer in customers:
                version = await change(db, customer)
                committed = time.monotonic()
                nudge(client)
                pushes = await receiver.await_for(accepted_version(customer, version))
                arrival = next(
                    p.received_at
                    for p in pushes
                    if p.rows
                    and p.rows[0]["queue_customer_id"] == customer
                    and p.rows[0]["version"] == version
                )
                latencies.append(arrival - committed)
    latencies.sort()
    median = statistics.median(latencies)
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"mirror push latency over {len(latencies)}: median {median * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {latencies[-1] * 1000:.1f} ms"
    )
    assert median < 0.1
    assert p99 < 0.5
    assert_in_order(receiver.pushes)


def metric(text: str, name: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(name + " ")]
    return float(lines[0].split()[1]) if lines else 0.0


async def test_metrics_show_the_backlog_and_pushes_by_outcome(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    await add_customer(db, "cust_1")
    await add_customer(db, "cust_2")
    await add_customer(db, "cust_barrier")
    receiver.fail(500)
    ok = 'queue_mirror_pushes_total{outcome="ok"}'
    failed = 'queue_mirror_pushes_total{outcome="failed"}'
    before = render_latest()[0].decode()
    async with mirror_app() as client:
        # the first round (all three rows) has ended, and refreshed the gauges, once
        # a second round has pushed
        await receiver.await_for(lambda pushes: len(pushes) >= 4)
        text = (await client.get("/metrics", headers=values.CONSOLE)).text
        assert metric(text, "queue_mirror_pending_rows") == 3
        assert metric(text, "queue_mirror_oldest_pending_age_seconds") > 0
        assert metric(text, failed) - metric(before, failed) >= 3
        receiver.recover()
        await receiver.await_for(lambda _: len(receiver.rows) == 3)
        await barrier(db, client, receiver)
        text = (await client.get("/metrics", headers=values.CONSOLE)).text
    assert metric(text, ok) - metric(before, ok) >= 3
