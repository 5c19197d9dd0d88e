"""Deliveries that arrive together share one statement and one commit
(webhooks/batching.py): each is still answered with its own outcome once committed,
applied, audited and mirrored as on its own, and one event's error stays its own.

To have deliveries arrive together, the test holds the worker's lane lock, as a
statement ahead of them would: the first delivery's statement waits for it in
Postgres; the next two go in the statement sent beside it, which waits there too; the
rest wait in the process and then go as one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY

from raxx_queue.webhooks.batching import LANE_CLASS
from tests.conftest import AppClient, AppFactory
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.webhooks import T0, customer_event, deliver, subscription_event

LOCK = "SELECT pg_advisory_lock(billing_customer_lock_key($1))"
UNLOCK = "SELECT pg_advisory_unlock(billing_customer_lock_key($1))"
WAITING_ON_LOCK = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
KILL_WAITING = (
    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
)
# the session that has waited longest for an advisory lock
KILL_FIRST_WAITING = """
SELECT pg_terminate_backend(pid) FROM pg_stat_activity
 WHERE datname = current_database() AND wait_event_type = 'Lock' AND wait_event = 'advisory'
 ORDER BY query_start LIMIT 1
"""
LANE_LOCK = "SELECT pg_advisory_lock($1, $2)"
LANE_UNLOCK = "SELECT pg_advisory_unlock($1, $2)"
# objsubid 2: the two-integer form of advisory locks (lanes); 1: one integer (customers)
WAITING_ON_LANE = """
SELECT count(*) FROM pg_locks
 WHERE locktype = 'advisory' AND NOT granted AND objsubid = 2 AND classid = $1::int::oid
"""


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def _statements() -> tuple[float, float]:
    """(statements, events) of queue_webhook_statement_events so far."""
    return (
        _sample("queue_webhook_statement_events_count"),
        _sample("queue_webhook_statement_events_sum"),
    )


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 15) -> None:
    """Poll state another task or Postgres changes; bounded."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"{what}: not within {timeout}s") from None


def _event(
    n: int, event_type: str = "customer.subscription.created", **overrides: Any
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "sub": f"sub_batch{n}",
        "customer": f"cus_batch{n}",
        "queue_customer_id": f"cust_batch{n}",
        "event_id": f"evt_batch{n}",
    }
    fields.update(overrides)
    return subscription_event(event_type, **fields)


async def _waiting_on_lane(db: Conn, statements: int) -> None:
    async def waiting() -> bool:
        return bool(await db.fetchval(WAITING_ON_LANE, LANE_CLASS) == statements)

    await _until(waiting, f"{statements} statement(s) waiting for the lane")


async def _deliver_held(
    client: AppClient, db: Conn, event: dict[str, Any]
) -> asyncio.Task[httpx.Response]:
    """Deliver an event while the caller holds the worker's lane; the delivery in
    flight, once its statement waits for the lane."""
    task = asyncio.create_task(deliver(client, event))
    await _waiting_on_lane(db, 1)
    return task


async def _arriving_together(
    client: AppClient,
    db: Conn,
    first: dict[str, Any],
    rest: list[dict[str, Any]],
    meanwhile: str | None = None,
) -> list[asyncio.Task[httpx.Response]]:
    """Deliver `first` while the worker's lane is held, then `rest` behind it: the first
    two of them in the statement sent beside the first's (both wait for the lane), the
    others waiting in the process. Then `meanwhile` runs (SQL) and the lane goes. The
    deliveries, in flight."""
    batcher = client.services.batcher
    await db.execute(LANE_LOCK, LANE_CLASS, batcher.lane)
    try:
        tasks = [await _deliver_held(client, db, first)]
        tasks += [asyncio.create_task(deliver(client, event)) for event in rest]
        beside = 2 if len(rest) >= 2 else 0  # sent once two wait behind the first's one

        async def rest_wait() -> bool:
            sent = batcher.in_statements == 1 + beside
            return sent and batcher.waiting == len(rest) - beside

        await _until(rest_wait, "the other deliveries sent and waiting")
        await _waiting_on_lane(db, 1 + (1 if beside else 0))
        if meanwhile is not None:
            await db.execute(meanwhile)
    finally:
        await db.execute(LANE_UNLOCK, LANE_CLASS, batcher.lane)
    return tasks


async def test_deliveries_arriving_together_are_each_applied_audited_and_mirrored(
    client: AppClient, db: Conn
) -> None:
    statements, events = _statements()
    rest = [_event(n) for n in range(1, 12)]
    answers = await asyncio.gather(*await _arriving_together(client, db, _event(0), rest))

    assert [a.status_code for a in answers] == [200] * 12
    assert [a.json()["event_id"] for a in answers] == [f"evt_batch{n}" for n in range(12)]
    assert {a.json()["outcome"] for a in answers} == {"applied"}
    # the first alone, the next two in the statement sent beside it, the nine after
    # them in one statement
    assert _statements() == (statements + 3, events + 12)
    outcomes = await db.fetch("SELECT event_id, outcome FROM processed_stripe_events")
    assert sorted(tuple(r) for r in outcomes) == sorted(
        (f"evt_batch{n}", "applied") for n in range(12)
    )
    audited = await db.fetch("SELECT event_id, queue_customer_id FROM billing_action_log")
    assert sorted(tuple(r) for r in audited) == sorted(
        (f"evt_batch{n}", f"cust_batch{n}") for n in range(12)
    )
    mirrored = await db.fetch(
        "SELECT queue_customer_id, plan_tier, entitled FROM billing_subscription_mirror"
    )
    assert sorted(tuple(r) for r in mirrored) == sorted(
        (f"cust_batch{n}", "pro", True) for n in range(12)
    )


async def test_the_next_statement_waits_in_postgres_and_goes_in_the_order_sent(
    client: AppClient, db: Conn
) -> None:
    """Beside a running statement, the next is sent once as many deliveries wait as the
    running one holds (at least two); it waits in Postgres for the worker's lane, and no
    third is sent. The statements commit in the order they were sent."""
    statements, events = _statements()
    batcher = client.services.batcher
    await db.execute(LANE_LOCK, LANE_CLASS, batcher.lane)
    try:
        tasks = [await _deliver_held(client, db, _event(0))]
        tasks.append(asyncio.create_task(deliver(client, _event(1))))

        async def one_waits() -> bool:
            return batcher.waiting == 1

        await _until(one_waits, "the second delivery waiting in the process")
        assert batcher.in_statements == 1  # one waiting is not yet a statement
        tasks.append(asyncio.create_task(deliver(client, _event(2))))

        async def second_sent() -> bool:
            return batcher.in_statements == 3

        await _until(second_sent, "the second statement sent")
        await _waiting_on_lane(db, 2)
        tasks += [asyncio.create_task(deliver(client, _event(n))) for n in (3, 4)]

        async def rest_wait() -> bool:
            return batcher.waiting == 2

        await _until(rest_wait, "the last two waiting in the process")
        assert batcher.in_statements == 3  # two statements sent, no third
    finally:
        await db.execute(LANE_UNLOCK, LANE_CLASS, batcher.lane)
    answers = await asyncio.gather(*tasks)

    assert [a.json()["outcome"] for a in answers] == ["applied"] * 5
    assert _statements() == (statements + 3, events + 5)
    audited = await db.fetch("SELECT event_id FROM billing_action_log ORDER BY id")
    assert [r["event_id"] for r in audited] == [f"evt_batch{n}" for n in range(5)]


async def test_with_several_workers_a_worker_sends_one_statement_at_a_time(
    app_factory: AppFactory, db: Conn
) -> None:
    """WEB_CONCURRENCY above 1: the other workers' statements keep Postgres busy, so a
    worker sends its next statement only once the last has ended, with all that waits."""
    statements, events = _statements()
    async with app_factory(web_concurrency=2) as client:
        batcher = client.services.batcher
        await db.execute(LANE_LOCK, LANE_CLASS, batcher.lane)
        try:
            tasks = [await _deliver_held(client, db, _event(0))]
            tasks += [asyncio.create_task(deliver(client, _event(n))) for n in (1, 2, 3)]

            async def rest_wait() -> bool:
                return batcher.waiting == 3

            await _until(rest_wait, "the other deliveries waiting in the process")
            assert batcher.in_statements == 1
            assert await db.fetchval(WAITING_ON_LANE, LANE_CLASS) == 1  # the first alone
        finally:
            await db.execute(LANE_UNLOCK, LANE_CLASS, batcher.lane)
        answers = await asyncio.gather(*tasks)

    assert [a.json()["outcome"] for a in answers] == ["applied"] * 4
    assert _statements() == (statements + 2, events + 4)


async def test_one_customer_in_a_batch_keeps_the_order_and_the_guard(
    client: AppClient, db: Conn
) -> None:
    """Within one statement, a duplicate is a duplicate and an older event is stale."""
    updated = "customer.subscription.updated"
    newer = _event(1, updated, event_id="evt_newer", status="past_due", created=T0 + 60)
    older = _event(1, updated, event_id="evt_older", status="canceled", created=T0 + 30)
    rest = [_event(2), _event(3), _event(1), newer, newer, older]  # the last four together
    tasks = await _arriving_together(client, db, _event(0), rest)
    answers = [answer.json() for answer in await asyncio.gather(*tasks)]

    assert [(a["event_id"], a["outcome"]) for a in answers] == [
        ("evt_batch0", "applied"),
        ("evt_batch2", "applied"),
        ("evt_batch3", "applied"),
        ("evt_batch1", "applied"),
        ("evt_newer", "applied"),
        ("evt_newer", "duplicate"),
        ("evt_older", "stale"),
    ]
    status = await db.fetchval(
        "SELECT status FROM billing_subscription WHERE stripe_subscription_id = 'sub_batch1'"
    )
    assert status == "past_due"
    assert await db.fetchval("SELECT count(*) FROM billing_action_log") == 5


async def test_an_event_that_cannot_be_stored_fails_alone_and_the_rest_apply(
    client: AppClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    splits = _sample("queue_webhook_batch_splits_total")
    unstorable = customer_event("customer.created", customer="cus_batch2", name="a\u0000b")
    rest = [_event(4), _event(5), _event(1), unstorable, _event(3)]  # the last three together
    answers = await asyncio.gather(*await _arriving_together(client, db, _event(0), rest))

    assert [a.status_code for a in answers] == [200, 200, 200, 200, 400, 200]
    assert answers[4].json()["error"]["code"] == "INVALID_EVENT"
    outcomes = [a.json().get("outcome") for a in answers]
    assert outcomes == ["applied", "applied", "applied", "applied", None, "applied"]
    assert _sample("queue_webhook_batch_splits_total") == splits + 1
    stored = await db.fetch("SELECT event_id FROM processed_stripe_events ORDER BY event_id")
    assert [r["event_id"] for r in stored] == [f"evt_batch{n}" for n in (0, 1, 3, 4, 5)]
    assert await db.fetchval("SELECT count(*) FROM billing_action_log") == 5
    (split,) = [e for e in captured_logs.entries if e.get("event") == "webhook_batch_split"]
    assert split["events"] == 3
    assert split["sqlstate"] is not None
    assert "request_id" not in split  # it served several requests
    # the event's own line names it, in its request
    assert captured_logs.logged(event="event_unstorable", event_id=unstorable["id"])


async def test_a_batch_whose_connection_dies_answers_503_for_each_and_stores_none(
    client: AppClient, db: Conn, captured_logs: CapturedLogs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database going away under a statement of several events: each of its
    deliveries gets a 503 (Stripe retries), none a 500, and none of them is stored."""
    # the batch must still be waiting when it is killed, however slow the machine: past
    # LOCK_WAIT it would give way, and the wait found would be an event's on its own
    monkeypatch.setattr("raxx_queue.webhooks.batching.LOCK_WAIT", "60s")
    await db.execute(LOCK, "cus_batch1")  # the batch's first customer, in lock order
    rest = [_event(3), _event(1)]
    # the first applies; the statement sent beside it then waits on cus_batch1
    tasks = await _arriving_together(client, db, _event(0), rest)
    batcher = client.services.batcher

    async def batch_waits() -> bool:
        return batcher.waiting == 0 and bool(await db.fetchval(WAITING_ON_LOCK))

    await _until(batch_waits, "the batch waiting on its first customer's lock")
    await db.execute(KILL_WAITING)
    answers = await asyncio.gather(*tasks)
    await db.execute(UNLOCK, "cus_batch1")

    assert [a.status_code for a in answers] == [200, 503, 503]
    assert {a.json()["error"]["code"] for a in answers[1:]} == {"DATABASE_UNAVAILABLE"}
    stored = await db.fetch("SELECT event_id FROM processed_stripe_events")
    assert [r["event_id"] for r in stored] == ["evt_batch0"]
    assert not captured_logs.logged(event="webhook_batch_split")


async def test_a_customer_held_for_long_holds_up_only_its_own_events(
    client: AppClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    """A batch meeting a lock held for long (an erasure, a stuck session) gives way after
    LOCK_WAIT: the other customers' events apply at once, the held one's when it is free."""
    await db.execute(LOCK, "cus_batch2")
    try:
        rest = [_event(1), _event(2), _event(3)]
        tasks = await _arriving_together(client, db, _event(0), rest)
        first, one, held, three = tasks
        answered = await asyncio.gather(first, one, three)
        assert [a.json()["outcome"] for a in answered] == ["applied"] * 3
        assert not held.done()
        assert await db.fetchval(WAITING_ON_LOCK) == 1
    finally:
        await db.execute(UNLOCK, "cus_batch2")
    answer = await held
    assert (answer.status_code, answer.json()["outcome"]) == (200, "applied")
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == 4
    (split,) = [e for e in captured_logs.entries if e.get("event") == "webhook_batch_split"]
    assert split["sqlstate"] == "55P03"  # lock_not_available: the batch's lock wait ran out


async def _given_way(
    client: httpx.AsyncClient, db: Conn, captured_logs: CapturedLogs
) -> asyncio.Task[httpx.Response]:
    """Delivery 0, whose customer the caller holds, sent on its own; returned once it has
    given way and waits for the customer outside the lane."""
    held = asyncio.create_task(deliver(client, _event(0)))

    async def waits_outside_the_lane() -> bool:
        split = captured_logs.logged(event="webhook_batch_split")
        return split and bool(await db.fetchval(WAITING_ON_LOCK))

    await _until(waits_outside_the_lane, "the held delivery waiting outside the lane")
    return held


async def test_a_lone_delivery_held_for_long_gives_way_and_the_lane_goes_on(
    client: AppClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    """A delivery running its own statement meets a customer held for long: after
    LOCK_WAIT it gives way and waits again outside the lane, and the deliveries after it
    are applied meanwhile."""
    await db.execute(LOCK, "cus_batch0")
    try:
        held = await _given_way(client, db, captured_logs)
        answers = await asyncio.gather(*(deliver(client, _event(n)) for n in (1, 2)))
        assert [a.json()["outcome"] for a in answers] == ["applied"] * 2
        assert not held.done()
    finally:
        await db.execute(UNLOCK, "cus_batch0")
    answer = await held
    assert (answer.status_code, answer.json()["outcome"]) == (200, "applied")
    (split,) = [e for e in captured_logs.entries if e.get("event") == "webhook_batch_split"]
    assert (split["events"], split["sqlstate"]) == (1, "55P03")
    assert split["request_id"] == answer.headers["x-request-id"]  # it ran in its request


async def test_a_lone_delivery_that_gave_way_no_longer_holds_the_workers_statement(
    app_factory: AppFactory, db: Conn, captured_logs: CapturedLogs
) -> None:
    """With several workers a worker sends one statement at a time: once a lone delivery
    held for long has given way, it waits outside the lane, and a single delivery after
    it gets the worker's statement at once instead of waiting for the held customer."""
    async with app_factory(web_concurrency=2) as client:
        await db.execute(LOCK, "cus_batch0")
        try:
            held = await _given_way(client, db, captured_logs)
            answer = await asyncio.wait_for(deliver(client, _event(1)), timeout=15)
            assert (answer.status_code, answer.json()["outcome"]) == (200, "applied")
            assert not held.done()
        finally:
            await db.execute(UNLOCK, "cus_batch0")
        answer = await held
    assert (answer.status_code, answer.json()["outcome"]) == (200, "applied")


async def test_a_lone_delivery_that_fails_still_hands_on_to_those_waiting_behind_it(
    client: AppClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    """A delivery with no statement running runs its own, in its request; those that
    arrive meanwhile go on once it ends, however it ended (here its connection dies
    under it): the statement waiting for the lane, then the rest together."""
    statements, events = _statements()
    rest = [_event(n) for n in range(1, 6)]
    meanwhile = KILL_FIRST_WAITING
    tasks = await _arriving_together(client, db, _event(0), rest, meanwhile=meanwhile)
    answers = await asyncio.gather(*tasks)

    assert [a.status_code for a in answers] == [503, 200, 200, 200, 200, 200]
    assert answers[0].json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert [a.json()["outcome"] for a in answers[1:]] == ["applied"] * 5
    # two behind it in the lane, three after them (a failed statement counts no events)
    assert _statements() == (statements + 2, events + 5)
    stored = await db.fetch("SELECT event_id FROM processed_stripe_events ORDER BY event_id")
    assert [r["event_id"] for r in stored] == [f"evt_batch{n}" for n in range(1, 6)]
    # the lone statement ran in its own request: the line of its lost connection names it
    (line,) = [e for e in captured_logs.entries if e.get("event") == "database_connection_lost"]
    assert line["request_id"] == answers[0].headers["x-request-id"]
