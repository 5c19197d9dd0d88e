"""From a Stripe webhook to Raptor: prompt, once per version, and never slowed by Raptor."""

from __future__ import annotations

import statistics
import time

from tests.mirror.conftest import MirrorApp
from tests.mirror.steps import accepted_version, assert_in_order, holds_versions, received
from tests.peers.raptor_receiver import RaptorReceiver
from tests.support import values
from tests.support.database import Conn
from tests.support.webhooks import (
    PERIOD_END,
    T0,
    customer_event,
    deliver,
    deliver_ok,
    subscription_event,
)

DAY = 86_400


def renewal(n: int) -> dict[str, object]:
    """The n-th subscription update: each moves the period end, so the mirror changes."""
    return subscription_event(
        "customer.subscription.updated", created=T0 + 10 + n, period_end=PERIOD_END + n * DAY
    )


async def mirror_version(db: Conn) -> int:
    version: int = await db.fetchval(
        "SELECT version FROM billing_subscription_mirror WHERE queue_customer_id = 'cust_1'"
    )
    return version


async def test_each_webhook_change_reaches_raptor_once_right_after_commit(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    latencies, answered = [], []
    # INFO: per-request debug lines would be most of the time measured
    async with mirror_app(log_level="INFO") as client:
        await deliver_ok(client, customer_event("customer.created", created=T0))
        await deliver_ok(
            client, subscription_event("customer.subscription.created", created=T0 + 1)
        )
        await receiver.await_for(accepted_version("cust_1", await mirror_version(db)))
        for n in range(1, 201):
            sent = time.monotonic()
            assert await deliver_ok(client, renewal(n)) == "applied"
            answered.append(time.monotonic() - sent)
            version = await mirror_version(db)
            pushes = await receiver.await_for(accepted_version("cust_1", version))
            arrival = next(p for p in pushes if p.rows[0]["version"] == version)
            # the commit happens between sending and the answer: an upper bound
            latencies.append(arrival.received_at - sent)
        final = await mirror_version(db)
    versions = received(receiver.pushes, "cust_1")
    assert versions == sorted(set(versions))  # each version once, in order
    assert versions[-1] == final
    assert receiver.rows["cust_1"]["current_period_end"].startswith(
        time.strftime("%Y-%m-%d", time.gmtime(PERIOD_END + 200 * DAY))
    )
    latencies.sort()
    median, p99 = statistics.median(latencies), latencies[int(len(latencies) * 0.99) - 1]
    print(
        f"webhook sent -> Raptor receipt over {len(latencies)} events: "
        f"median {median * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms; "
        f"webhook answered in median {statistics.median(answered) * 1000:.1f} ms"
    )
    assert median < 0.1
    assert p99 < 0.5


async def test_a_failing_or_hanging_raptor_never_slows_the_webhook(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    async with mirror_app() as client:
        receiver.hang()
        await deliver_ok(client, customer_event("customer.created", created=T0))
        await deliver_ok(
            client, subscription_event("customer.subscription.created", created=T0 + 1)
        )
        await receiver.await_for(lambda pushes: len(pushes) >= 1)  # a push is hanging
        slowest = 0.0
        for n in range(1, 21):
            if n == 10:
                receiver.recover()
                receiver.fail(500)
            started = time.monotonic()
            response = await deliver(client, renewal(n))
            slowest = max(slowest, time.monotonic() - started)
            assert response.status_code == 200
        assert slowest < 0.5
        assert await db.fetchval(
            "SELECT version > pushed_version FROM billing_subscription_mirror"
        )  # the backlog is kept
        receiver.recover()
        final = await mirror_version(db)
        await receiver.await_for(holds_versions({"cust_1": final}), timeout=10)
    assert receiver.rows["cust_1"]["version"] == final
    assert_in_order(receiver.pushes)
    for push in receiver.pushes:
        assert b"jenny" not in push.raw.lower()
        assert values.MIRROR_TOKEN.encode() not in push.raw
