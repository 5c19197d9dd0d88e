"""Deliveries that arrive together share one statement and one commit
(webhooks/batching.py): each is still answered with its own outcome once committed,
applied, audited and mirrored as on its own, and one event's error stays its own.

To have deliveries arrive together, the first one's customer lock is held: its
statement waits in Postgres while the others queue behind it, then they go as one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from prometheus_client import REGISTRY

from tests.conftest import AppClient
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.webhooks import T0, customer_event, deliver, subscription_event

LOCK = "SELECT pg_advisory_lock(billing_customer_lock_key($1))"
UNLOCK = "SELECT pg_advisory_unlock(billing_customer_lock_key($1))"
WAITING_ON_LOCK = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
KILL_WAITING = (
    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
)


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


async def _arriving_together(
    client: AppClient,
    db: Conn,
    first: dict[str, Any],
    rest: list[dict[str, Any]],
    meanwhile: str | None = None,
) -> list[asyncio.Task[httpx.Response]]:
    """Deliver `first` while its customer is locked, then `rest` behind it; once they
    all wait for one statement, `meanwhile` runs (SQL) and the lock goes. The
    deliveries, in flight."""
    customer = first["data"]["object"]["customer"]
    batcher = client.services.batcher
    await db.execute(LOCK, customer)
    try:
        tasks = [asyncio.create_task(deliver(client, first))]

        async def first_waits() -> bool:
            return bool(await db.fetchval(WAITING_ON_LOCK))

        await _until(first_waits, "the first delivery waiting on its customer's lock")
        tasks += [asyncio.create_task(deliver(client, event)) for event in rest]

        async def rest_wait() -> bool:
            return batcher.waiting == len(rest)

        await _until(rest_wait, "the other deliveries waiting for the statement")
        if meanwhile is not None:
            await db.execute(meanwhile)
    finally:
        await db.execute(UNLOCK, customer)
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
    # the first alone, the eleven behind it in one statement
    assert _statements() == (statements + 2, events + 12)
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


async def test_one_customer_in_a_batch_keeps_the_order_and_the_guard(
    client: AppClient, db: Conn
) -> None:
    """Within one statement, a duplicate is a duplicate and an older event is stale."""
    updated = "customer.subscription.updated"
    newer = _event(1, updated, event_id="evt_newer", status="past_due", created=T0 + 60)
    older = _event(1, updated, event_id="evt_older", status="canceled", created=T0 + 30)
    rest = [_event(1), newer, newer, older]
    tasks = await _arriving_together(client, db, _event(0), rest)
    answers = [answer.json() for answer in await asyncio.gather(*tasks)]

    assert [(a["event_id"], a["outcome"]) for a in answers] == [
        ("evt_batch0", "applied"),
        ("evt_batch1", "applied"),
        ("evt_newer", "applied"),
        ("evt_newer", "duplicate"),
        ("evt_older", "stale"),
    ]
    status = await db.fetchval(
        "SELECT status FROM billing_subscription WHERE stripe_subscription_id = 'sub_batch1'"
    )
    assert status == "past_due"
    assert await db.fetchval("SELECT count(*) FROM billing_action_log") == 3


async def test_an_event_that_cannot_be_stored_fails_alone_and_the_rest_apply(
    client: AppClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    splits = _sample("queue_webhook_batch_splits_total")
    unstorable = customer_event("customer.created", customer="cus_batch2", name="a\u0000b")
    rest = [_event(1), unstorable, _event(3)]
    answers = await asyncio.gather(*await _arriving_together(client, db, _event(0), rest))

    assert [a.status_code for a in answers] == [200, 200, 400, 200]
    assert answers[2].json()["error"]["code"] == "INVALID_EVENT"
    assert [a.json().get("outcome") for a in answers] == ["applied", "applied", None, "applied"]
    assert _sample("queue_webhook_batch_splits_total") == splits + 1
    stored = await db.fetch("SELECT event_id FROM processed_stripe_events ORDER BY event_id")
    assert [r["event_id"] for r in stored] == ["evt_batch0", "evt_batch1", "evt_batch3"]
    assert await db.fetchval("SELECT count(*) FROM billing_action_log") == 3
    (split,) = [e for e in captured_logs.entries if e.get("event") == "webhook_batch_split"]
    assert split["events"] == 3
    assert split["sqlstate"] is not None
    assert "request_id" not in split  # it served several requests
    # the event's own line names it, in its request
    assert captured_logs.logged(event="event_unstorable", event_id=unstorable["id"])


async def test_a_batch_whose_connection_dies_answers_503_for_each_and_stores_none(
    client: AppClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    """The database going away under a statement of several events: each of its
    deliveries gets a 503 (Stripe retries), none a 500, and none of them is stored."""
    await db.execute(LOCK, "cus_batch1")  # the batch's first customer, in lock order
    rest = [_event(3), _event(1), _event(2)]
    # the first applies; the batch behind it then waits on cus_batch1
    tasks = await _arriving_together(client, db, _event(0), rest)
    batcher = client.services.batcher

    async def batch_waits() -> bool:
        return batcher.waiting == 0 and bool(await db.fetchval(WAITING_ON_LOCK))

    await _until(batch_waits, "the batch waiting on its first customer's lock")
    await db.execute(KILL_WAITING)
    answers = await asyncio.gather(*tasks)
    await db.execute(UNLOCK, "cus_batch1")

    assert [a.status_code for a in answers] == [200, 503, 503, 503]
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


async def test_a_lone_delivery_that_fails_still_hands_on_to_those_waiting_behind_it(
    client: AppClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    """A delivery with no statement running runs its own, in its request; those that
    arrive meanwhile go together once it ends, however it ended (here its connection
    dies under it)."""
    statements, events = _statements()
    rest = [_event(1), _event(2), _event(3)]
    tasks = await _arriving_together(client, db, _event(0), rest, meanwhile=KILL_WAITING)
    answers = await asyncio.gather(*tasks)

    assert [a.status_code for a in answers] == [503, 200, 200, 200]
    assert answers[0].json()["error"]["code"] == "DATABASE_UNAVAILABLE"
    assert [a.json()["outcome"] for a in answers[1:]] == ["applied"] * 3
    # the three behind it in one statement (a failed statement counts no events)
    assert _statements() == (statements + 1, events + 3)
    stored = await db.fetch("SELECT event_id FROM processed_stripe_events ORDER BY event_id")
    assert [r["event_id"] for r in stored] == ["evt_batch1", "evt_batch2", "evt_batch3"]
    # the lone statement ran in its own request: the line of its lost connection names it
    (line,) = [e for e in captured_logs.entries if e.get("event") == "database_connection_lost"]
    assert line["request_id"] == answers[0].headers["x-request-id"]
