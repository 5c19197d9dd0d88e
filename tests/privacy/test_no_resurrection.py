"""After an erasure, nothing brings the person back: Stripe's retries, new events, a
replay, a reconcile, an event racing the erasure; money state still applies."""

from __future__ import annotations

import asyncio
import json

import asyncpg

from raxx_queue.plans import price_tiers
from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.events import build_event, subscription_obj
from raxx_queue.simulator.fixtures import fixture
from raxx_queue.webhooks.pipeline import EventContext, apply_stripe_event
from tests.conftest import AppClient
from tests.privacy import person
from tests.support import values
from tests.support.catchup import catchup_app, worker
from tests.support.database import Conn
from tests.support.webhooks import PERIOD_END, T0, deliver_ok

ERASE = f"/api/internal/billing/customers/{person.QUEUE_ID}/erase"
WAITING_FOR_LOCK = (
    "SELECT count(*) > 0 FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
    "AND wait_event = 'advisory'"
)
PERSONAL = "SELECT billing_email, billing_name, billing_address FROM billing_customer"


async def until_waiting_for_lock(db: Conn) -> None:
    """Another session's state: polled, for at most 30 s."""
    async with asyncio.timeout(30):
        while not await db.fetchval(WAITING_FOR_LOCK):
            await asyncio.sleep(0.02)


async def seeded_and_erased(client: AppClient) -> list[dict[str, object]]:
    history = person.history()
    for event in history:
        await deliver_ok(client, event)
    response = await client.post(ERASE, headers=values.CONSOLE)
    assert response.status_code == 200, response.text
    return history


async def test_stripes_retries_of_pre_erasure_events_are_duplicates(
    client: AppClient, db: Conn
) -> None:
    history = await seeded_and_erased(client)

    outcomes = [await deliver_ok(client, event) for event in history]

    assert set(outcomes) == {"duplicate"}
    assert await person.scan(db) == {}
    assert dict(await db.fetchrow(PERSONAL)) == dict.fromkeys(
        ("billing_email", "billing_name", "billing_address")
    )


async def test_new_events_store_nothing_personal_and_money_state_applies(
    client: AppClient, db: Conn
) -> None:
    await seeded_and_erased(client)
    assert await db.fetchval("SELECT status FROM billing_subscription") == "past_due"
    later = events_after_erasure()

    outcomes = [await deliver_ok(client, event) for event in later]

    # the dispute applies too (access policy): its evidence's name and e-mail are not kept
    assert outcomes == ["applied", "applied", "applied"]
    assert await person.scan(db) == {}
    assert await db.fetchval("SELECT status FROM billing_subscription") == "active"
    paid = "SELECT amount_paid FROM billing_invoice WHERE stripe_invoice_id = 'in_erase2'"
    assert await db.fetchval(paid) == 2000


def events_after_erasure() -> list[dict[str, object]]:
    """The customer edits their details, pays the failed invoice, loses a dispute."""
    dispute = fixture("dispute")
    dispute.update(id="dp_erase1", charge="ch_erase1", created=T0 + 90, status="lost")
    dispute["evidence"].update(customer_email_address=person.EMAIL, customer_name=person.NAME)
    return [
        build_event("customer.updated", person.customer(created=T0 + 80), created=T0 + 80),
        build_event(
            "invoice.paid", person.invoice("in_erase2", "paid", created=T0 + 40), created=T0 + 85
        ),
        build_event("charge.dispute.closed", dispute, created=T0 + 90),
    ]


async def test_the_catchup_stores_nothing_personal(
    clean_db: str, db: Conn, stripe_double: StripeDouble
) -> None:
    async with catchup_app(clean_db, stripe_double) as client:
        for event in await seeded_and_erased(client):
            stripe_double.add_event(event)
        for event in events_after_erasure():
            stripe_double.add_event(event, delivered=False)

        report = await worker(client).run_once(force=True)

    assert report is not None
    assert report.outcome == "ok"
    # the customer's edit, the payment and the dispute
    assert report.applied_count == 3
    assert await person.scan(db) == {}
    assert await db.fetchval("SELECT status FROM billing_subscription") == "active"


async def test_another_stripe_customer_naming_the_erased_customer_stores_nothing(
    client: AppClient, db: Conn
) -> None:
    await seeded_and_erased(client)
    # the person signs up again at Stripe under the same platform id (a second customer)
    other = json.loads(
        json.dumps(
            [
                build_event(
                    "customer.created", person.customer(created=T0 + 100), created=T0 + 100
                ),
                build_event(
                    "invoice.payment_failed",
                    person.invoice("in_other", "open", created=T0 + 110, attempt_count=1),
                    created=T0 + 110,
                ),
            ]
        ).replace(person.CUSTOMER, "cus_other")
    )

    outcomes = [await deliver_ok(client, event) for event in other]

    assert outcomes == ["applied", "applied"]
    assert await person.scan(db) == {}


async def test_a_replay_stores_nothing_personal(client: AppClient, db: Conn) -> None:
    history = await seeded_and_erased(client)
    settings = client.services.settings
    context = EventContext(
        price_tiers=price_tiers(settings), grace_days=settings.grace_period_days, source="replay"
    )

    for event in history:
        # events Queue never stored: the same objects under new ids
        fresh = {**event, "id": f"{event['id']}_replayed"}
        await apply_stripe_event(client.services.db, fresh, context, None)

    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == 16
    assert await person.scan(db) == {}


async def test_a_reconcile_finds_no_drift_in_erased_fields(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    await seeded_and_erased(client)
    stripe_double.put_customer(person.customer())
    stripe_double.put_subscription(
        subscription_obj(
            "sub_erase1",
            person.CUSTOMER,
            "active",
            values.PRICE_PRO,
            PERIOD_END,
            metadata={"queue_customer_id": person.QUEUE_ID},
            created=T0,
        )
    )
    stripe_double.put_invoice(person.invoice("in_erase1", "paid", created=T0 + 3))

    response = await client.post(
        "/api/internal/billing/reconcile",
        json={"queue_customer_id": person.QUEUE_ID},
        headers=values.CONSOLE,
    )

    assert response.status_code == 200, response.text
    changes = response.json()["changes"]
    assert [c["object"] for c in changes] == ["subscription"]  # past_due → active only
    assert await db.fetchval("SELECT status FROM billing_subscription") == "active"
    assert await person.scan(db) == {}


async def test_an_event_racing_the_erasure_waits_for_it_and_stores_nothing_personal(
    client: AppClient, db: Conn, clean_db: str
) -> None:
    for event in person.history():
        await deliver_ok(client, event)
    eraser = await asyncpg.connect(clean_db)
    try:
        transaction = eraser.transaction()
        await transaction.start()
        # the erasure holds the customer's lock: the event waits before storing its row
        await eraser.execute(
            "SELECT pg_advisory_xact_lock(billing_customer_lock_key($1))", person.CUSTOMER
        )
        racing = build_event("customer.updated", person.customer(created=T0 + 80), created=T0 + 80)
        delivery = asyncio.create_task(deliver_ok(client, racing))
        await until_waiting_for_lock(db)
        await eraser.fetchrow(
            "SELECT * FROM billing_erase_customer($1, $2)", person.QUEUE_ID, person.CUSTOMER
        )
        await transaction.commit()
        assert await asyncio.wait_for(delivery, timeout=30) == "applied"
    finally:
        await eraser.close()

    assert await person.scan(db) == {}
