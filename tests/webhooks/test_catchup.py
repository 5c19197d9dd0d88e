"""The catch-up: events Stripe never delivered are applied within one cycle, once each."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import orjson

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.webhooks.catchup import Window
from raxx_queue.webhooks.event_listing import HANDLED_TYPES, type_groups
from tests.support import values
from tests.support.catchup import (
    audit_verified,
    catchup_app,
    catchup_config,
    recent_stream,
    worker,
)
from tests.support.database import Conn
from tests.support.event_stream import in_order_state, snapshot
from tests.support.webhooks import deliver, deliver_ok


async def test_two_hours_never_delivered_are_applied_within_one_cycle(
    clean_db: str, db: Conn, pg_server: str, stripe_double: StripeDouble
) -> None:
    stream = recent_stream(12, span=7200)
    arrived = len(stream) // 10
    async with catchup_app(clean_db, stripe_double) as client:
        for event in stream[:arrived]:
            stripe_double.add_event(event)
            assert await deliver_ok(client, event) == "applied"
        missed = stream[arrived:]
        for n, event in enumerate(missed):
            # most failed every delivery; some went to another endpoint only, so only the
            # window since the newest applied event finds them
            stripe_double.add_event(event, delivered=n % 4 == 0)

        started = time.monotonic()
        report = await worker(client).run_once(force=True)
        elapsed = time.monotonic() - started
        audit = await audit_verified(client)
        state = await snapshot(db)

    assert report is not None
    assert report.outcome == "ok"
    assert report.applied_count == len(missed)
    assert report.invalid == 0
    assert report.lag_before_seconds == missed[-1]["created"] - stream[arrived - 1]["created"]
    assert report.lag_before_seconds > 6000
    assert report.lag_after_seconds == 0
    assert state == await in_order_state(pg_server, stream)
    assert audit["ok"] is True
    sources = await db.fetch(
        "SELECT source, count(*) AS n FROM processed_stripe_events GROUP BY source ORDER BY 1"
    )
    assert [(r["source"], r["n"]) for r in sources] == [
        ("catchup", len(missed)),
        ("webhook", arrived),
    ]
    missed_ids = [e["id"] for e in missed]
    actors = await db.fetch(
        "SELECT DISTINCT actor FROM billing_action_log WHERE event_id = ANY($1::text[])",
        missed_ids,
    )
    assert [r["actor"] for r in actors] == ["catchup"]
    print(
        f"two hours undelivered: {len(missed)} events missed, applied in one run of "
        f"{elapsed:.2f}s ({report.requests} Stripe requests); lag "
        f"{report.lag_before_seconds}s -> {report.lag_after_seconds}s"
    )


async def test_billing_off_for_ten_minutes_then_caught_up_and_stripes_retries_are_duplicates(
    clean_db: str, db: Conn, pg_server: str, stripe_double: StripeDouble
) -> None:
    stream = recent_stream(12, span=1800)
    cut = time.time() - 600
    before = [e for e in stream if e["created"] < cut]
    during = [e for e in stream if e["created"] >= cut]
    assert before
    assert during
    async with catchup_app(clean_db, stripe_double) as client:
        for event in before:
            stripe_double.add_event(event)
            await deliver_ok(client, event)

    # billing off: Stripe's deliveries are refused (it will retry), the catch-up applies
    # nothing either, and only measures
    async with catchup_app(clean_db, stripe_double, flag_queue_billing=False) as off:
        for event in during:
            stripe_double.add_event(event, delivered=False)
            assert (await deliver(off, event)).status_code == 503
        while_off = await worker(off).run_once(force=True)
        health_off = (await off.get("/health")).json()["stripe_events"]
    assert while_off is not None
    assert while_off.outcome == "billing_off"
    assert while_off.applied_count == 0
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == len(before)
    assert while_off.lag_before_seconds == during[-1]["created"] - before[-1]["created"]
    assert health_off["lag_seconds"] == while_off.lag_before_seconds

    # billing on: the catch-up runs at start, paced as in production
    switched_on = time.monotonic()
    config = catchup_config(autostart=True, rate=5.0)
    async with catchup_app(clean_db, stripe_double, config) as on:
        caught_up = await worker(on).wait_for_runs(1, timeout=60)
        time_to_caught_up = time.monotonic() - switched_on
        # then Stripe's own retries arrive
        retries = [await deliver(on, event) for event in during]
        for event in during:
            stripe_double.mark_delivered(event["id"])
        again = await worker(on).run_once(force=True)
        audit = await audit_verified(on)
        health_on = (await on.get("/health")).json()["stripe_events"]
        state = await snapshot(db)

    assert caught_up.outcome == "ok"
    assert caught_up.applied_count == len(during)
    assert caught_up.lag_after_seconds == 0
    assert [r.status_code for r in retries] == [200] * len(during)
    assert {r.json()["outcome"] for r in retries} == {"duplicate"}
    assert again is not None
    assert again.applied_count == 0
    per_event = await db.fetch(
        "SELECT e.event_id, e.source, count(a.id) AS audit_rows"
        "  FROM processed_stripe_events AS e LEFT JOIN billing_action_log AS a USING (event_id)"
        " WHERE e.event_id = ANY($1::text[]) GROUP BY 1, 2",
        [e["id"] for e in during],
    )
    assert len(per_event) == len(during)
    assert {(r["source"], r["audit_rows"]) for r in per_event} == {("catchup", 1)}
    assert audit["ok"] is True
    assert health_on["lag_seconds"] == 0
    assert health_on["last_run"]["outcome"] == "ok"
    assert state == await in_order_state(pg_server, stream)
    print(
        f"billing off 10 min: {len(during)} events missed; caught up "
        f"{time_to_caught_up:.2f}s after billing came back ({caught_up.requests} Stripe "
        f"requests at 5/s); lag "
        f"{while_off.lag_before_seconds}s -> {caught_up.lag_after_seconds}s; "
        f"{len(retries)} retries by Stripe answered duplicate"
    )


async def test_the_checkpoint_moves_only_past_what_was_applied_and_the_next_run_resumes(
    clean_db: str, db: Conn, pg_server: str, stripe_double: StripeDouble
) -> None:
    stream = recent_stream(6, span=3000)
    first, rest = stream[:3], stream[3:]
    config = catchup_config(window=Window(slice_seconds=600))
    async with catchup_app(clean_db, stripe_double, config) as client:
        for event in first:
            stripe_double.add_event(event)
            await deliver_ok(client, event)
        for event in rest:
            stripe_double.add_event(event, delivered=True)  # only the window finds them
        # Stripe fails for good from the third slice of the window on (each read is one
        # request per group of types)
        groups = len(type_groups(HANDLED_TYPES))
        stripe_double.fail_always("/v1/events", "server_error", after=4 * groups)
        failed = await worker(client).run_once(force=True)
        through = await _checkpoint(db)
        applied_so_far = await db.fetchval(
            "SELECT count(*) FROM processed_stripe_events WHERE source = 'catchup'"
        )
        stripe_double.clear_failures()
        resumed = await worker(client).run_once(force=True)
        state = await snapshot(db)

    assert failed is not None
    assert failed.outcome == "stripe_unavailable"
    assert through is not None
    # every event created before the checkpoint is applied, none after it
    assert applied_so_far == sum(1 for e in rest if e["created"] < through)
    assert 0 < applied_so_far < len(rest)
    assert resumed is not None
    assert resumed.outcome == "ok"
    assert resumed.applied_count == len(rest) - applied_so_far
    assert state == await in_order_state(pg_server, stream)


async def test_a_webhook_and_the_catchup_racing_on_one_event_leave_one_effect(
    clean_db: str, db: Conn, stripe_double: StripeDouble
) -> None:
    """The webhook has recorded the event but not committed; the catch-up, which could not
    see it, applies the same event: it waits on the ledger's key, then finds a duplicate."""
    [event] = recent_stream(1, span=60)[:1]
    stripe_double.add_event(event, delivered=False)
    customer = event["data"]["object"]["id"]
    holder = await _connect(clean_db)
    async with catchup_app(clean_db, stripe_double) as client:
        # hold the customer's lock: the webhook stops inside its transaction, after
        # recording the event
        await holder.execute("SELECT pg_advisory_lock(billing_customer_lock_key($1))", customer)
        webhook = asyncio.create_task(deliver(client, event))
        await _wait_for_lock_waiters(db, 1)
        catchup = asyncio.create_task(worker(client).run_once(force=True))
        await _wait_for_lock_waiters(db, 2)  # the catch-up waits on the webhook's record
        await holder.execute("SELECT pg_advisory_unlock(billing_customer_lock_key($1))", customer)
        response = await asyncio.wait_for(webhook, 30)
        report = await asyncio.wait_for(catchup, 30)
    await holder.close()

    assert response.status_code == 200
    assert response.json()["outcome"] == "applied"
    assert report is not None
    assert dict(report.outcomes) == {"duplicate": 1}
    assert report.applied_count == 0
    rows = await db.fetch("SELECT actor FROM billing_action_log WHERE event_id = $1", event["id"])
    assert [r["actor"] for r in rows] == ["stripe"]
    assert (
        await db.fetchval(
            "SELECT source FROM processed_stripe_events WHERE event_id = $1", event["id"]
        )
        == "webhook"
    )


async def test_many_webhooks_and_a_catchup_at_once_apply_each_event_once(
    clean_db: str, db: Conn, stripe_double: StripeDouble
) -> None:
    stream = recent_stream(8, span=900)
    for event in stream:
        stripe_double.add_event(event, delivered=False)
    semaphore = asyncio.Semaphore(8)
    async with catchup_app(clean_db, stripe_double) as client:

        async def send(event: dict[str, object]) -> str:
            async with semaphore:
                response = await deliver(client, event)
            assert response.status_code == 200, response.text
            outcome: str = response.json()["outcome"]
            return outcome

        report, *outcomes = await asyncio.gather(
            worker(client).run_once(force=True), *(send(e) for e in stream)
        )
    assert report is not None
    webhook_effects = sum(1 for o in outcomes if o != "duplicate")
    catchup_effects = sum(n for o, n in report.outcomes.items() if o != "duplicate")
    assert webhook_effects + catchup_effects == len(stream)
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == len(stream)
    twice = await db.fetchval(
        "SELECT count(*) FROM (SELECT event_id FROM billing_action_log"
        " GROUP BY event_id HAVING count(*) > 1) AS t"
    )
    assert twice == 0


async def _checkpoint(db: Conn) -> int | None:
    position = await db.fetchval(
        "SELECT position FROM billing_job_checkpoint WHERE job = 'stripe-event-catchup'"
    )
    return int(orjson.loads(position)["through"]) if position else None


async def _connect(url: str) -> Conn:
    return await asyncpg.connect(url)


async def _wait_for_lock_waiters(db: Conn, count: int, timeout: float = 20.0) -> None:
    """Until `count` sessions of this database wait on a lock (nothing to await across
    sessions but Postgres's own view)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    while await db.fetchval(query) < count:
        assert loop.time() < deadline, f"{count} lock waiters not seen in {timeout}s"
        await asyncio.sleep(0.02)


async def test_the_lag_and_the_runs_are_exposed_as_metrics(
    clean_db: str, stripe_double: StripeDouble
) -> None:
    stream = recent_stream(1, span=600)
    for event in stream:
        stripe_double.add_event(event, delivered=False)
    async with catchup_app(clean_db, stripe_double) as client:
        report = await worker(client).run_once(force=True)
        text = (await client.get("/metrics", headers=values.CONSOLE)).text

    assert report is not None
    assert report.lag_after_seconds == 0
    assert "\nqueue_stripe_event_lag_seconds 0.0\n" in text
    assert 'queue_catchup_applied_total{type="customer.subscription.created"}' in text
    assert 'queue_catchup_runs_total{outcome="ok"}' in text
