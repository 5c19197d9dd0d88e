"""Retention: payloads older than EVENT_PAYLOAD_RETENTION_DAYS are stripped to ids;
deduplication of a late retry still works."""

from __future__ import annotations

import json

from raxx_queue.webhooks.retention import JOB, EventRetentionJob
from tests.conftest import AppClient, AppFactory
from tests.privacy import person
from tests.support.database import Conn
from tests.support.webhooks import deliver_ok

AGE = """
UPDATE processed_stripe_events SET received_at = now() - make_interval(days => $2)
 WHERE event_id = ANY($1::text[])
"""


def retention_job(client: AppClient) -> EventRetentionJob:
    job = client.services.workers.retention
    assert job is not None
    return job


async def test_old_payloads_are_stripped_and_a_late_retry_is_still_a_duplicate(
    client: AppClient, db: Conn
) -> None:
    history = person.history()
    for event in history:
        await deliver_ok(client, event)
    old, recent = history[:6], history[6:]
    await db.execute(AGE, [e["id"] for e in old], 36)
    await db.execute(AGE, [e["id"] for e in recent], 34)
    ledger_before = await db.fetch(
        "SELECT event_id, type, outcome, stripe_customer_id, event_created_at"
        " FROM processed_stripe_events ORDER BY event_id"
    )

    report = await retention_job(client).run_once(force=True)

    assert report is not None
    print("retention run:", report)
    assert report["outcome"] == "ok"
    assert report["stripped"] == len(old)
    assert report["bytes_after"] < report["bytes_before"]
    rows = {
        r["event_id"]: r
        for r in await db.fetch(
            "SELECT event_id, billing_event_payload(payload, payload_raw) AS payload,"
            " payload_raw, payload_stripped_at FROM processed_stripe_events"
        )
    }
    for event in old:
        row = rows[event["id"]]
        assert row["payload_stripped_at"] is not None
        assert row["payload_raw"] is None  # the delivery's raw copy went with the rest
        payload = json.loads(row["payload"])
        assert payload["id"] == event["id"]
        assert payload["type"] == event["type"]
        assert payload["created"] == event["created"]
        assert payload["data"]["object"]["id"] == event["data"]["object"]["id"]
        # the same as stripping the whole event, though stripped from its stored stub
        whole = await db.fetchval("SELECT billing_strip_payload($1::jsonb)", json.dumps(event))
        assert payload == json.loads(whole)
        for needle in person.NEEDLES:
            assert needle not in row["payload"]
    for event in recent:
        assert rows[event["id"]]["payload_stripped_at"] is None
        assert person.EMAIL in rows[event["id"]]["payload"]
        assert person.EMAIL in rows[event["id"]]["payload_raw"]
    ledger_after = await db.fetch(
        "SELECT event_id, type, outcome, stripe_customer_id, event_created_at"
        " FROM processed_stripe_events ORDER BY event_id"
    )
    assert ledger_after == ledger_before

    # Stripe retries an event whose payload was stripped: still a duplicate
    assert await deliver_ok(client, old[0]) == "duplicate"
    assert await deliver_ok(client, old[4]) == "duplicate"

    run = await db.fetchrow("SELECT outcome, report FROM billing_job_run WHERE job = $1", JOB)
    assert run["outcome"] == "ok"
    assert json.loads(run["report"])["stripped"] == len(old)
    # the next run is not due for an hour; forced, it finds nothing left
    assert await retention_job(client).run_once() is None
    again = await retention_job(client).run_once(force=True)
    assert again is not None
    assert again["stripped"] == 0


async def test_zero_days_turns_retention_off(app_factory: AppFactory) -> None:
    async with app_factory(event_payload_retention_days=0) as client:
        assert client.services.workers.retention is None
