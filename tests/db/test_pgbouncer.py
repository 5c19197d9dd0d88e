"""Queue behind a real PgBouncer in transaction mode, as Heroku's connection pooling runs.

Each transaction may land on another server session there: webhooks, reads, the write
flows (subscribe, portal, mirror-sync), the mirror dispatcher, the audit sealer, grace
expiry and the operator's audit verify must keep nothing in a session. The crash and
two-process tests run through it too (tests/reliability, the `route` fixture).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from raxx_queue.db.pool import Database
from raxx_queue.errors import DatabaseUnavailable
from raxx_queue.settings import PoolMode
from raxx_queue.simulator.double import StripeDouble
from tests.billing.support import subscribe_body
from tests.conftest import AppClient, make_settings, running_app
from tests.mirror.steps import FAST, accepted_version
from tests.peers.raptor_receiver import RaptorReceiver
from tests.support import values
from tests.support.database import Conn
from tests.support.pgbouncer import SERVICE_ENV, PgBouncer
from tests.support.process import run_audit_verify
from tests.support.webhooks import (
    T0,
    customer_event,
    deliver_ok,
    invoice_event,
    subscription_event,
)

STALL_DEADLINE = 30.0


@pytest.fixture
def pooled_url(pgbouncer: PgBouncer, clean_db: str) -> str:
    return pgbouncer.url_for(clean_db)


@pytest.fixture
def receiver() -> Iterator[RaptorReceiver]:
    with RaptorReceiver(token=values.MIRROR_TOKEN) as running:
        yield running


@pytest.fixture
async def pooled(
    pooled_url: str, receiver: RaptorReceiver, stripe_double: StripeDouble
) -> AsyncIterator[AppClient]:
    """The app with every connection through PgBouncer, pushing to a Raptor receiver."""
    settings = make_settings(
        pooled_url, database_pool_mode="transaction", raptor_mirror_url=receiver.url
    )
    async with running_app(
        settings, stripe_transport=stripe_double.transport, mirror_config=FAST
    ) as client:
        yield client


async def subscribed(client: httpx.AsyncClient) -> dict[str, Any]:
    """cust_1 on the pro plan; returns the subscription's event."""
    assert await deliver_ok(client, customer_event("customer.created", created=T0)) == "applied"
    created = subscription_event("customer.subscription.created", created=T0 + 1)
    assert await deliver_ok(client, created) == "applied"
    return created


async def test_webhooks_apply_once(pooled: AppClient, db: Conn) -> None:
    created = await subscribed(pooled)
    assert await deliver_ok(pooled, created) == "duplicate"
    assert await deliver_ok(pooled, invoice_event("invoice.paid", created=T0 + 2)) == "applied"
    # many at once: each on whichever server session PgBouncer lends
    renewals = [
        subscription_event("customer.subscription.updated", created=T0 + 10 + n) for n in range(20)
    ]
    outcomes = await asyncio.gather(*(deliver_ok(pooled, event) for event in renewals))
    assert set(outcomes) <= {"applied", "stale"}
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == 23


async def test_reads(pooled: AppClient) -> None:
    await subscribed(pooled)
    await deliver_ok(pooled, invoice_event("invoice.paid", created=T0 + 2))
    subscription = await pooled.get("/api/v1/billing/subscriptions/cust_1", headers=values.RAPTOR)
    assert subscription.status_code == 200
    assert (subscription.json()["plan_tier"], subscription.json()["entitled"]) == ("pro", True)
    for path in (
        "/api/v1/billing/customers/cust_1",
        "/api/v1/billing/invoices/cust_1",
        "/api/v1/billing/customers?limit=10",
    ):
        response = await pooled.get(path, headers=values.CONSOLE)
        assert response.status_code == 200, (path, response.text)
    listed = await pooled.get("/api/v1/billing/customers", headers=values.CONSOLE)
    assert [row["queue_customer_id"] for row in listed.json()["data"]] == ["cust_1"]
    assert (await pooled.get("/ready")).status_code == 200


async def test_subscribe_portal_and_mirror_sync(pooled: AppClient, db: Conn) -> None:
    """The write flows: each one transaction opened in one place, with Stripe between."""
    subscribe = await pooled.post(
        "/api/v1/billing/subscribe", json=subscribe_body(), headers=values.RAPTOR
    )
    assert subscribe.status_code == 201, subscribe.text
    # a retry finds what the first call stored, whichever server session it lands on
    again = await pooled.post(
        "/api/v1/billing/subscribe", json=subscribe_body(), headers=values.RAPTOR
    )
    assert again.json()["subscription_id"] == subscribe.json()["subscription_id"]
    portal = await pooled.post(
        "/api/v1/billing/portal", json={"queue_customer_id": "qc_1"}, headers=values.RAPTOR
    )
    assert portal.status_code == 200, portal.text
    sync = await pooled.post(
        "/api/internal/billing/mirror-sync",
        json={"queue_customer_id": "qc_1"},
        headers=values.CONSOLE,
    )
    assert sync.status_code == 200, sync.text
    assert (
        await db.fetchval(
            "SELECT count(*) FROM billing_subscription WHERE stripe_customer_id ="
            " (SELECT stripe_customer_id FROM billing_customer WHERE queue_customer_id = 'qc_1')"
        )
        == 1
    )


async def test_mirror_dispatcher_pushes(
    pooled: AppClient, db: Conn, receiver: RaptorReceiver
) -> None:
    await subscribed(pooled)
    version = await db.fetchval(
        "SELECT version FROM billing_subscription_mirror WHERE queue_customer_id = 'cust_1'"
    )
    await receiver.await_for(accepted_version("cust_1", version), timeout=15)
    assert receiver.rows["cust_1"]["plan_tier"] == "pro"


async def test_grace_expiry(pooled: AppClient, db: Conn) -> None:
    await subscribed(pooled)
    await deliver_ok(pooled, invoice_event("invoice.payment_failed", status="open", created=T0 + 5))
    past = datetime.now(UTC) - timedelta(seconds=1)
    await db.execute("UPDATE billing_subscription SET grace_until = $1", past)
    await db.execute(
        "UPDATE billing_subscription_mirror SET grace_until = $1, access_due_at = $1", past
    )
    job = pooled.services.workers.grace
    assert job is not None
    assert await job.run_once() == 1
    assert await db.fetchval("SELECT entitled FROM billing_subscription_mirror") is False
    assert await job.run_once() == 0


async def test_audit_sealer_and_verify(pooled: AppClient, db: Conn, pooled_url: str) -> None:
    await subscribed(pooled)
    sealer = pooled.services.workers.sealer
    assert sealer is not None
    await sealer.seal_now()
    rows = await db.fetchval("SELECT count(*) FROM billing_action_log")
    assert rows > 0
    assert await db.fetchval("SELECT count(*) FROM billing_action_log WHERE row_hash IS NULL") == 0
    verified = await pooled.get("/api/internal/billing/audit/verify", headers=values.CONSOLE)
    assert verified.status_code == 200
    assert (verified.json()["ok"], verified.json()["rows"]) == (True, rows)
    # separate processes whose statements would share names on a pooled server session
    os.environ.update(SERVICE_ENV)
    try:
        reports = [run_audit_verify(pooled_url) for _ in range(3)]
    finally:
        for name in SERVICE_ENV:
            os.environ.pop(name)
    for done in reports:
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["rows"] == rows


async def stall_until_ended(stalled: Database, db: Conn) -> None:
    """Open a transaction holding a lock, then go silent until Postgres ends it."""
    async with stalled.transaction() as tx:
        backend = await tx.conn.fetchval("SELECT pg_backend_pid()")
        await tx.conn.execute("SELECT pg_advisory_xact_lock(42)")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STALL_DEADLINE
        gone = "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1"
        while not await db.fetchval(gone, backend):
            assert loop.time() < deadline, f"backend {backend} not ended in {STALL_DEADLINE}s"
            await asyncio.sleep(0.05)  # the server's timer: nothing to await
        assert await db.fetchval("SELECT pg_try_advisory_lock(42)") is True


async def test_a_stalled_transaction_is_ended_by_its_transaction_scoped_cap(
    pooled_url: str, db: Conn
) -> None:
    """No session SET behind the pooler: the idle-in-transaction cap rides on each
    transaction (SET LOCAL), and still frees a frozen process's locks."""
    stalled = Database(
        pooled_url, max_size=1, idle_in_transaction_timeout=0.2, mode=PoolMode.TRANSACTION
    )
    await stalled.open()
    try:
        async with stalled.connection() as conn:
            assert await conn.fetchval("SHOW idle_in_transaction_session_timeout") == "0"
        # the session is gone when the transaction would commit: 503, never a 500
        with pytest.raises(DatabaseUnavailable):
            await stall_until_ended(stalled, db)
    finally:
        await db.execute("SELECT pg_advisory_unlock_all()")
        await stalled.close()


async def test_session_mode_through_the_pooler_is_refused(pooled_url: str) -> None:
    """The pooler is as strict as Heroku's: a session-mode pool (its start-up setting)
    cannot connect, which is why the mode is a setting."""
    wrong = Database(pooled_url, max_size=1, mode=PoolMode.SESSION)
    await wrong.open()
    try:
        assert await wrong.ping() is False
        with pytest.raises(asyncpg.ProtocolViolationError, match="unsupported startup parameter"):
            await wrong.pool.fetchval("SELECT 1")
    finally:
        await wrong.close()
