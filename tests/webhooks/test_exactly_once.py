"""The same event delivered again, or many times at once, has one effect."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from raxx_queue.simulator.events import event_body, signed
from tests.support import values
from tests.support.database import Conn
from tests.support.webhooks import WEBHOOK, deliver, subscription_event


async def _effects(db: Conn, event_id: str) -> tuple[int, int, int, int]:
    return (
        await db.fetchval(
            "SELECT count(*) FROM processed_stripe_events WHERE event_id = $1", event_id
        ),
        await db.fetchval("SELECT count(*) FROM billing_action_log WHERE event_id = $1", event_id),
        await db.fetchval("SELECT count(*) FROM billing_subscription"),
        await db.fetchval("SELECT version FROM billing_subscription_mirror"),
    )


async def test_sequential_redelivery_is_a_duplicate(client: httpx.AsyncClient, db: Conn) -> None:
    event = subscription_event("customer.subscription.created")
    first = await deliver(client, event)
    second = await deliver(client, event)
    assert first.json()["outcome"] == "applied"
    assert second.status_code == 200
    assert second.json() == {"received": True, "event_id": event["id"], "outcome": "duplicate"}
    assert await _effects(db, event["id"]) == (1, 1, 1, 1)


async def test_fifty_concurrent_copies_apply_once(client: httpx.AsyncClient, db: Conn) -> None:
    event = subscription_event("customer.subscription.created")
    body, header = signed(event, values.WEBHOOK_SECRET)
    headers = {"Stripe-Signature": header, "Content-Type": "application/json"}
    responses = await asyncio.gather(
        *(client.post(WEBHOOK, content=body, headers=headers) for _ in range(50))
    )
    assert {r.status_code for r in responses} == {200}
    outcomes = Counter(r.json()["outcome"] for r in responses)
    assert outcomes == {"applied": 1, "duplicate": 49}
    assert await _effects(db, event["id"]) == (1, 1, 1, 1)
    status = await db.fetchval("SELECT status FROM billing_subscription")
    assert status == "active"


async def test_duplicate_with_different_body_keeps_the_first(
    client: httpx.AsyncClient, db: Conn
) -> None:
    """Stripe never changes an event; a same-id copy with another body changes nothing."""
    event = subscription_event("customer.subscription.created", status="active")
    await deliver(client, event)
    altered = subscription_event(
        "customer.subscription.created", status="canceled", event_id=event["id"]
    )
    assert event_body(altered) != event_body(event)
    response = await deliver(client, altered)
    assert response.json()["outcome"] == "duplicate"
    assert await db.fetchval("SELECT status FROM billing_subscription") == "active"
