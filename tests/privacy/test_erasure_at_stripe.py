"""`{"stripe": "delete"}`: the Stripe customer deleted through the SDK with an
idempotency key; a Stripe failure leaves Queue's erasure done and the step pending."""

from __future__ import annotations

from typing import Any

from raxx_queue.simulator.double import StripeDouble
from tests.conftest import AppClient
from tests.privacy import person
from tests.support import values
from tests.support.database import Conn
from tests.support.webhooks import deliver_ok

ERASE = f"/api/internal/billing/customers/{person.QUEUE_ID}/erase"
DELETE_STRIPE = {"stripe": "delete"}
STRIPE_ROWS = "SELECT count(*) FROM billing_action_log WHERE action = 'customer.erase.stripe'"


async def seeded(client: AppClient, double: StripeDouble) -> None:
    double.put_customer(person.customer())
    for event in person.history():
        await deliver_ok(client, event)


async def test_the_stripe_customer_is_deleted_once_and_its_events_bring_nothing_back(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    await seeded(client, stripe_double)
    emitted: list[dict[str, Any]] = []
    stripe_double.listen(emitted.append)

    response = await client.post(ERASE, headers=values.CONSOLE, json=DELETE_STRIPE)

    assert response.status_code == 200, response.text
    assert response.json()["stripe"] == {
        "status": "deleted",
        "stripe_customer_id": person.CUSTOMER,
        "error_code": None,
    }
    deletes = stripe_double.requests_to("DELETE", "/v1/customers")
    assert [(r.path, r.idempotency_key) for r in deletes] == [
        (f"/v1/customers/{person.CUSTOMER}", f"erase:{person.CUSTOMER}")
    ]
    assert await db.fetchval(STRIPE_ROWS) == 1
    # Stripe's customer.deleted carries the customer as it was: stored redacted, applied
    for event in emitted:
        await deliver_ok(client, event)
    assert "customer.deleted" in [e["type"] for e in emitted]
    assert await db.fetchval("SELECT deleted_at IS NOT NULL FROM billing_customer")
    assert await person.scan(db) == {}

    again = await client.post(ERASE, headers=values.CONSOLE, json=DELETE_STRIPE)

    assert again.status_code == 200, again.text
    assert again.json()["already_erased"] is True
    assert again.json()["stripe"]["status"] == "deleted"
    assert await db.fetchval(STRIPE_ROWS) == 1


async def test_a_stripe_failure_leaves_the_erasure_done_and_the_step_pending(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    await seeded(client, stripe_double)
    stripe_double.fail_always("/v1/customers", "server_error", method="DELETE")

    response = await client.post(ERASE, headers=values.CONSOLE, json=DELETE_STRIPE)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stripe"]["status"] == "pending"
    assert body["stripe"]["error_code"] == "STRIPE_UNAVAILABLE"
    assert body["erased"]["event_payloads"] == 7
    assert await person.scan(db) == {}
    assert await db.fetchval(STRIPE_ROWS) == 0
    assert not stripe_double.get(person.CUSTOMER).get("deleted")

    stripe_double.clear_failures()
    retried = await client.post(ERASE, headers=values.CONSOLE, json=DELETE_STRIPE)

    assert retried.status_code == 200, retried.text
    assert retried.json()["stripe"]["status"] == "deleted"
    assert stripe_double.get(person.CUSTOMER).get("deleted")
    keys = {r.idempotency_key for r in stripe_double.requests_to("DELETE", "/v1/customers")}
    assert keys == {f"erase:{person.CUSTOMER}"}
    assert await db.fetchval(STRIPE_ROWS) == 1
    erase_rows = "SELECT count(*) FROM billing_action_log WHERE action = 'customer.erase'"
    assert await db.fetchval(erase_rows) == 1


async def test_without_a_stripe_key_nothing_is_erased_and_the_answer_is_503(
    app_factory: Any, db: Conn
) -> None:
    async with app_factory(stripe_restricted_key=None, stripe_secret_key=None) as client:
        for event in person.history():
            await deliver_ok(client, event)
        response = await client.post(ERASE, headers=values.CONSOLE, json=DELETE_STRIPE)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "STRIPE_NOT_CONFIGURED"
    assert await db.fetchval("SELECT erased_at FROM billing_customer") is None
