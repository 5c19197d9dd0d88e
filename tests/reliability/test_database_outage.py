"""The database goes away under a stream of webhooks, and comes back.

Two faults: every session of the test database terminated again and again while
events arrive, and the network to Postgres cut for a while (a proxy we control).
Throughout, a webhook is answered 2xx only once its event is committed; during the
cut webhooks and reads answer 503 and /ready 503; afterwards Stripe's redelivery
applies every event exactly once and the state is the in-order one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.reliability.conftest import Stream, assert_state
from tests.reliability.streams import (
    Deliveries,
    assert_exactly_once,
    audit_verify,
    connect,
    deliver_all,
    redeliver,
    serving,
    wait_ready,
    wait_sealed,
)
from tests.support import values
from tests.support.database import Conn
from tests.support.event_stream import snapshot
from tests.support.faults import CuttableProxy, postgres_address, terminate_backends, via_port
from tests.support.process import free_port

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def terminating_backends(
    database_url: str, spare: Conn, every: float
) -> AsyncIterator[list[int]]:
    """Terminate every session of the test database (but spare's) every `every` seconds."""
    terminated: list[int] = []
    conn = await connect(database_url)

    async def storm() -> None:
        while True:
            terminated.append(await terminate_backends(conn, spare=(spare,)))
            await asyncio.sleep(every)

    task = asyncio.create_task(storm())
    try:
        yield terminated
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await conn.close()


async def read_until(url: str, stop: asyncio.Event) -> Counter[tuple[str, int]]:
    """Console's reads and the platform's readiness probe, over and over."""
    seen: Counter[tuple[str, int]] = Counter()
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while not stop.is_set():
            for path in (
                "/api/v1/billing/customers",
                "/api/v1/billing/customers/cust_3",
                "/api/v1/billing/subscriptions/cust_3",
                "/ready",
            ):
                response = await http.get(path, headers=values.CONSOLE)
                seen[(path, response.status_code)] += 1
    return seen


async def test_terminated_backends_never_ack_an_uncommitted_event(
    clean_db: str, db: Conn, stream: Stream
) -> None:
    result = Deliveries()
    async with serving(clean_db, LOG_LEVEL="INFO") as service:
        stop = asyncio.Event()
        reads = asyncio.create_task(read_until(service.url, stop))
        async with terminating_backends(clean_db, db, every=0.02) as terminated:
            await deliver_all(service.url, stream.deliveries, result, concurrency=8)
        stop.set()
        seen = await reads
        # requests that lost their connection answered 503; nothing else went wrong
        assert sum(terminated) > 0
        statuses = dict(result.statuses)
        assert set(result.statuses) <= {200, 503}, result.statuses
        assert result.statuses[503] > 0
        assert all("DATABASE_UNAVAILABLE" in body for body in result.bodies)
        assert {status for _, status in seen} <= {200, 404, 503}, seen
        # an acknowledged event is committed, whatever happened after
        recorded = await db.fetch("SELECT event_id FROM processed_stripe_events")
        assert set(result.acked) <= {r["event_id"] for r in recorded}

        await redeliver(service.url, result)
        await wait_sealed(db)

    assert_state(await snapshot(db), stream)
    await assert_exactly_once(db, stream.in_order, result)
    assert audit_verify(clean_db)["ok"] is True
    print(
        f"terminate storm: {sum(terminated)} sessions terminated; webhooks {dict(statuses)};"
        f" reads {dict(seen)}"
    )


async def answers_while_cut(url: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        customer = await http.get("/api/v1/billing/customers/cust_1", headers=values.CONSOLE)
        listing = await http.get("/api/v1/billing/customers", headers=values.CONSOLE)
        invoices = await http.get("/api/v1/billing/invoices/cust_1", headers=values.RAPTOR)
        # answered by api/read_lane.py, ahead of the framework
        subscription = await http.get("/api/v1/billing/subscriptions/cust_1", headers=values.RAPTOR)
        ready = await http.get("/ready")
        health = await http.get("/health")
    assert health.json()["database"] == "unavailable"
    for error in (customer, listing, invoices, subscription, ready):
        assert error.json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    return {
        "customer": customer.status_code,
        "list": listing.status_code,
        "invoices": invoices.status_code,
        "subscription": subscription.status_code,
        "retry_after": int(subscription.headers["retry-after"]),
        "ready": ready.status_code,
        "health": health.status_code,
    }


async def test_database_cut_then_back(clean_db: str, db: Conn, stream: Stream) -> None:
    port = free_port()
    first, during, after = (
        stream.deliveries[:60],
        stream.deliveries[60:120],
        stream.deliveries[120:],
    )
    result = Deliveries()
    async with (
        CuttableProxy(port, postgres_address(clean_db)) as proxy,
        serving(via_port(clean_db, port), LOG_LEVEL="INFO") as service,
    ):
        await deliver_all(service.url, first, result)
        assert set(result.statuses) == {200}

        await proxy.cut()
        before = await db.fetchval("SELECT count(*) FROM processed_stripe_events")
        outage = await deliver_all(service.url, during, Deliveries())
        answers = await answers_while_cut(service.url)
        # nothing acknowledged, nothing written
        assert set(outage.statuses) == {503}, outage.statuses
        assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == before
        expected = {
            "customer": 503,
            "list": 503,
            "invoices": 503,
            "subscription": 503,
            "retry_after": 5,
            "ready": 503,
            "health": 200,
        }
        assert answers == expected

        await proxy.restore()
        await wait_ready(service.url)
        result.failed.update((e, v) for e, v in outage.failed.items() if e not in result.acked)
        await deliver_all(service.url, after, result)
        await redeliver(service.url, result)
        await wait_sealed(db)

    assert_state(await snapshot(db), stream)
    await assert_exactly_once(db, stream.in_order, result)
    assert audit_verify(clean_db)["ok"] is True
    print(f"cut: during the cut webhooks {dict(outage.statuses)}, reads/ready {answers}")
