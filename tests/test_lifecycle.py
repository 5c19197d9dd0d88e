"""The process as Heroku runs it: graceful SIGTERM, and start-up while the database is away."""

from __future__ import annotations

import asyncio
import signal
import time

import asyncpg
import httpx
import pytest

from raxx_queue.simulator.events import signed
from tests.support import values
from tests.support.database import Conn
from tests.support.faults import CuttableProxy, postgres_address, via_port
from tests.support.process import free_port, running_service, start_service, status_of, wait_until
from tests.support.webhooks import WEBHOOK, subscription_event

SHUTDOWN_BUDGET = 25.0


async def _wait_for_lock_waiter(db: Conn) -> None:
    """Until a backend waits on an advisory lock: the webhook is in flight."""
    for _ in range(400):
        waiting = await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND wait_event = 'advisory'"
        )
        if waiting:
            return
        await asyncio.sleep(0.05)  # polling another process's state
    raise TimeoutError("the webhook never reached the lock")


@pytest.mark.parametrize("workers", [1, 2])
async def test_sigterm_finishes_the_in_flight_request_and_exits_0(
    clean_db: str, db: Conn, workers: int
) -> None:
    event = subscription_event("customer.subscription.created", customer="cus_slow")
    body, header = signed(event, values.WEBHOOK_SECRET)
    with running_service(clean_db, workers=workers) as service:
        # hold the customer's lock so the webhook is slow: it waits inside its transaction
        await db.execute("SELECT pg_advisory_lock(billing_customer_lock_key('cus_slow'))")
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
            request = asyncio.create_task(
                http.post(WEBHOOK, content=body, headers={"Stripe-Signature": header})
            )
            await _wait_for_lock_waiter(db)
            service.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # once SIGTERM is handled, new connections are refused
            await asyncio.to_thread(
                wait_until, lambda: status_of(f"{service.url}/health") is None, 10, "stop accepting"
            )
            await db.execute("SELECT pg_advisory_unlock(billing_customer_lock_key('cus_slow'))")
            response = await request
        code = await asyncio.to_thread(service.process.wait, SHUTDOWN_BUDGET)
        elapsed = time.monotonic() - signalled
    assert response.status_code == 200
    assert response.json()["outcome"] == "applied"
    assert code == 0
    assert elapsed < SHUTDOWN_BUDGET
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == 1


async def test_starts_without_database_then_becomes_ready(clean_db: str) -> None:
    proxy_port = free_port()
    away = via_port(clean_db, proxy_port)
    service = start_service(away)
    try:
        started = time.monotonic()
        await asyncio.to_thread(
            wait_until, lambda: status_of(f"{service.url}/health") == 200, 30, "port bound"
        )
        bound_after = time.monotonic() - started
        health = httpx.get(f"{service.url}/health", timeout=5).json()
        assert health["database"] == "unavailable"
        assert status_of(f"{service.url}/ready") == 503

        # the database appears: a proxy to it starts listening where the service looks
        async with CuttableProxy(proxy_port, postgres_address(clean_db)):
            await asyncio.to_thread(
                wait_until, lambda: status_of(f"{service.url}/ready") == 200, 30, "ready"
            )
            # the proxy runs on this loop: call the service from a thread
            response = await asyncio.to_thread(httpx.get, f"{service.url}/health", timeout=5)
            assert response.json()["database"] == "ok"
            conn = await asyncpg.connect(away)
            await conn.close()
            service.process.terminate()
            assert await asyncio.to_thread(service.process.wait, SHUTDOWN_BUDGET) == 0
    finally:
        if service.process.poll() is None:
            service.process.kill()
            service.process.wait()
    assert bound_after < 30
