"""The outbox statements: claims, leases as fencing tokens, results, re-queueing."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import httpx
import pytest

from raxx_queue.db.pool import Database
from raxx_queue.mirror import outbox
from raxx_queue.mirror.dispatcher import MirrorDispatcher
from raxx_queue.mirror.outbox import PushResult
from raxx_queue.wakeups import Wakeup
from tests.mirror.steps import FAST, add_customer, change, mirror_state, signer
from tests.peers.raptor_receiver import RaptorReceiver
from tests.support import values
from tests.support.database import Conn


async def seconds_until(db: Conn, customer: str) -> float:
    return float(
        await db.fetchval(
            "SELECT extract(epoch FROM next_push_at - now()) FROM billing_subscription_mirror"
            " WHERE queue_customer_id = $1",
            customer,
        )
    )


async def test_claims_skip_leased_rows_and_rows_locked_by_a_writer(db: Conn, clean_db: str) -> None:
    for customer in ("cust_0", "cust_1", "cust_2"):
        await add_customer(db, customer)
    writer = await asyncpg.connect(clean_db)
    try:
        async with writer.transaction():
            await writer.execute(
                "SELECT 1 FROM billing_subscription_mirror WHERE queue_customer_id = 'cust_1'"
                " FOR UPDATE"
            )
            started = time.monotonic()
            claims = await outbox.claim_due(db, 10, 30)
            assert time.monotonic() - started < 0.2  # never waits on the writer
            assert sorted(c.queue_customer_id for c in claims) == ["cust_0", "cust_2"]
            assert await outbox.claim_due(db, 10, 30) == []  # the others are leased
    finally:
        await writer.close()
    [claim] = await outbox.claim_due(db, 10, 30)
    assert claim.queue_customer_id == "cust_1"


async def test_a_stale_lease_holder_records_nothing(db: Conn) -> None:
    await add_customer(db, "cust_1")
    [stale] = await outbox.claim_due(db, 10, 0)  # a lease that has already run out
    await change(db, "cust_1")
    [current] = await outbox.claim_due(db, 10, 30)
    assert current.lease > stale.lease
    assert (stale.version, current.version) == (1, 2)

    assert await outbox.record_results(db, [PushResult(stale, "ok")]) == 0
    assert await outbox.record_results(db, [PushResult(stale, "failed", 9, "HTTP 500")]) == 0
    state = await mirror_state(db, "cust_1")
    assert (state["pushed_version"], state["push_attempts"]) == (0, 0)
    assert state["push_lease_until"] == current.lease

    assert await outbox.record_results(db, [PushResult(current, "ok")]) == 1
    state = await mirror_state(db, "cust_1")
    assert (state["pushed_version"], state["push_lease_until"]) == (2, None)


async def test_a_row_changed_during_its_push_stays_pending_for_the_newer_version(
    db: Conn,
) -> None:
    await add_customer(db, "cust_1")
    [claim] = await outbox.claim_due(db, 10, 30)
    await change(db, "cust_1")
    await outbox.record_results(db, [PushResult(claim, "ok")])
    state = await mirror_state(db, "cust_1")
    assert (state["pushed_version"], state["version"]) == (1, 2)
    [again] = await outbox.claim_due(db, 10, 30)
    assert again.version == 2


async def test_requeue_makes_a_pushed_row_pending_and_respects_a_lease(db: Conn) -> None:
    await add_customer(db, "cust_1")
    await add_customer(db, "cust_2")
    claims = await outbox.claim_due(db, 10, 30)
    await outbox.record_results(db, [PushResult(c, "ok") for c in claims])
    assert await outbox.pending_stats(db) == (0, 0.0)

    row = await outbox.requeue_customer(db, "cust_1")
    assert row is not None
    assert row["version"] == 1
    state = await mirror_state(db, "cust_1")
    assert (state["pushed_version"], state["version"]) == (0, 1)
    [claim] = await outbox.claim_due(db, 10, 30)

    assert await outbox.requeue_batch(db, "", 1) == ("cust_1", 1)
    assert await outbox.requeue_batch(db, "cust_1", 10) == ("cust_2", 1)
    assert await outbox.requeue_batch(db, "cust_2", 10) == (None, 0)
    state = await mirror_state(db, "cust_1")
    assert state["push_lease_until"] == claim.lease  # the push in flight keeps its lease
    assert [c.queue_customer_id for c in await outbox.claim_due(db, 10, 30)] == ["cust_2"]
    pending, oldest_age = await outbox.pending_stats(db)
    assert pending == 2
    assert 0 <= oldest_age < 5
    assert await outbox.requeue_customer(db, "nobody") is None


@pytest.fixture
async def pool(clean_db: str) -> AsyncIterator[Database]:
    database = Database(clean_db)
    await database.open()
    yield database
    await database.close()


async def test_failed_pushes_back_off_exponentially(
    db: Conn, pool: Database, receiver: RaptorReceiver
) -> None:
    await add_customer(db, "cust_1")
    config = replace(FAST, retry_base=10.0, retry_cap=25.0)
    receiver.fail(500)
    headers = {"Authorization": f"Bearer {values.MIRROR_TOKEN}"}
    async with httpx.AsyncClient(headers=headers) as client:
        dispatcher = MirrorDispatcher(pool, client, receiver.url, Wakeup(), config, signer())
        for attempt, (low, high) in enumerate([(5, 10), (10, 20), (12.5, 25), (12.5, 25)], 1):
            assert await dispatcher.dispatch_once() == 1
            state = await mirror_state(db, "cust_1")
            assert state["push_attempts"] == attempt
            assert state["last_push_error"] == "HTTP 500"
            assert state["push_lease_until"] is None
            assert low - 0.5 <= await seconds_until(db, "cust_1") <= high
            assert await dispatcher.dispatch_once() == 0  # not due yet
            await db.execute("UPDATE billing_subscription_mirror SET next_push_at = now()")
        receiver.recover()
        assert await dispatcher.dispatch_once() == 1
    state = await mirror_state(db, "cust_1")
    assert (state["pushed_version"], state["push_attempts"], state["last_push_error"]) == (
        1,
        0,
        None,
    )


async def test_a_requeue_during_a_push_asks_for_one_more_push(db: Conn) -> None:
    await add_customer(db, "cust_1")
    [claim] = await outbox.claim_due(db, 10, 30)
    await outbox.requeue_customer(db, "cust_1")  # e.g. Raptor lost its copy meanwhile
    assert await outbox.record_results(db, [PushResult(claim, "ok")]) == 1
    state = await mirror_state(db, "cust_1")
    assert (state["pushed_version"], state["version"]) == (0, 1)
    [again] = await outbox.claim_due(db, 10, 30)
    assert again.version == 1


async def test_a_result_is_recorded_again_when_the_first_attempt_fails(
    db: Conn, pool: Database, receiver: RaptorReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_customer(db, "cust_1")
    real = outbox.record_results
    calls = 0

    async def flaky(conn: object, results: list[PushResult]) -> int:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise asyncpg.InternalClientError("connection lost")
        return await real(conn, results)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox, "record_results", flaky)
    headers = {"Authorization": f"Bearer {values.MIRROR_TOKEN}"}
    async with httpx.AsyncClient(headers=headers) as client:
        dispatcher = MirrorDispatcher(pool, client, receiver.url, Wakeup(), FAST, signer())
        assert await dispatcher.dispatch_once() == 1
    assert calls == 2
    state = await mirror_state(db, "cust_1")
    assert (state["pushed_version"], state["push_lease_until"]) == (1, None)
