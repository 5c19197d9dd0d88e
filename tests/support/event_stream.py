"""Lifecycles of many customers as signed-event streams, and state snapshots to compare."""

from __future__ import annotations

import random
from typing import Any

import asyncpg

from raxx_queue.simulator.events import build_event
from raxx_queue.simulator.objects import deleted_customer_obj
from tests.conftest import make_settings, running_app
from tests.support import values
from tests.support.database import Conn, create_database, drop_database, migrate
from tests.support.webhooks import T0, customer_event, deliver, invoice_event, subscription_event

Event = dict[str, Any]


def customer_lifecycle(k: int) -> list[Event]:
    """Ten events of one customer in the order Stripe created them; four endings."""
    t = T0 - 100_000 + k * 20
    ids = {"sub": f"sub_{k}", "customer": f"cus_{k}"}
    sub = {**ids, "queue_customer_id": f"cust_{k}"}
    inv = {"customer": ids["customer"], "sub": ids["sub"]}
    events = [
        customer_event(
            "customer.created",
            customer=ids["customer"],
            queue_customer_id=f"cust_{k}",
            email=f"user{k}@example.com",
            created=t,
        ),
        subscription_event(
            "customer.subscription.created", status="incomplete", created=t + 1, **sub
        ),
        invoice_event("invoice.created", invoice=f"in_{k}_1", status="draft", created=t + 2, **inv),
        invoice_event("invoice.paid", invoice=f"in_{k}_1", created=t + 3, **inv),
        subscription_event("customer.subscription.updated", status="active", created=t + 4, **sub),
        invoice_event(
            "invoice.payment_failed", invoice=f"in_{k}_2", status="open", created=t + 5, **inv
        ),
        subscription_event(
            "customer.subscription.updated", status="past_due", created=t + 6, **sub
        ),
    ]
    ending = k % 4
    if ending == 0:  # recovers and upgrades
        events += [
            invoice_event("invoice.paid", invoice=f"in_{k}_2", created=t + 7, **inv),
            subscription_event(
                "customer.subscription.updated",
                status="active",
                price=values.PRICE_PRO_PLUS,
                created=t + 8,
                **sub,
            ),
            customer_event(
                "customer.updated",
                customer=ids["customer"],
                queue_customer_id=f"cust_{k}",
                email=f"new{k}@example.com",
                created=t + 9,
            ),
        ]
    elif ending == 1:  # fails again and goes unpaid
        events += [
            invoice_event(
                "invoice.payment_failed",
                invoice=f"in_{k}_2",
                status="open",
                created=t + 7,
                attempt_count=2,
                **inv,
            ),
            subscription_event(
                "customer.subscription.updated", status="unpaid", created=t + 8, **sub
            ),
            build_event("payout.paid", {"id": f"po_{k}", "object": "payout"}, created=t + 9),
        ]
    elif ending == 2:  # recovers, then cancels
        events += [
            invoice_event("invoice.paid", invoice=f"in_{k}_2", created=t + 7, **inv),
            subscription_event(
                "customer.subscription.updated",
                status="active",
                cancel_at_period_end=True,
                created=t + 8,
                **sub,
            ),
            subscription_event(
                "customer.subscription.deleted", status="canceled", created=t + 9, **sub
            ),
        ]
    else:  # recovers, then the Stripe customer is deleted
        events += [
            invoice_event("invoice.paid", invoice=f"in_{k}_2", created=t + 7, **inv),
            subscription_event(
                "customer.subscription.updated", status="active", created=t + 8, **sub
            ),
            build_event("customer.deleted", deleted_customer_obj(ids["customer"]), created=t + 9),
        ]
    return events


def event_stream(customers: int, duplicates: float, seed: int) -> tuple[list[Event], list[Event]]:
    """(every event in order, the deliveries: shuffled with a share of duplicates)."""
    rng = random.Random(seed)
    in_order = [event for k in range(customers) for event in customer_lifecycle(k)]
    deliveries = in_order + rng.sample(in_order, int(len(in_order) * duplicates))
    rng.shuffle(deliveries)
    return in_order, deliveries


SNAPSHOT = {
    "customers": """
        SELECT queue_customer_id, stripe_customer_id, billing_email, billing_name,
               deleted_at IS NOT NULL AS deleted
          FROM billing_customer ORDER BY stripe_customer_id""",
    "subscriptions": """
        SELECT stripe_subscription_id, stripe_customer_id, status, price_id, plan_tier,
               current_period_end, cancel_at_period_end, canceled_at, ended_at, grace_until
          FROM billing_subscription ORDER BY stripe_subscription_id""",
    "invoices": """
        SELECT stripe_invoice_id, stripe_subscription_id, status, amount_due, amount_paid
          FROM billing_invoice ORDER BY stripe_invoice_id""",
    "mirror": """
        SELECT queue_customer_id, plan_tier, status, current_period_end, grace_until, entitled
          FROM billing_subscription_mirror ORDER BY queue_customer_id""",
    "events": "SELECT event_id, type FROM processed_stripe_events ORDER BY event_id",
}


async def snapshot(conn: Conn) -> dict[str, list[dict[str, Any]]]:
    """The business state: what a customer, Console or Raptor could observe.

    Left out on purpose: bookkeeping that records the path rather than the state
    (versions, feature_locked_at - set only when a fall in tier was observed -, the
    failure counter of invoices that arrived before their subscription).
    """
    return {name: [dict(r) for r in await conn.fetch(sql)] for name, sql in SNAPSHOT.items()}


async def in_order_state(pg_server: str, in_order: list[Event]) -> dict[str, list[dict[str, Any]]]:
    """snapshot() of a scratch database that was sent the events one by one, in order."""
    reference = await create_database(pg_server, prefix="queue_reference")
    try:
        migrate(reference)
        async with running_app(make_settings(reference, log_level="WARNING")) as app:
            for event in in_order:
                response = await deliver(app, event)
                assert response.json()["outcome"] in {"applied", "ignored"}
        conn = await asyncpg.connect(reference)
        try:
            return await snapshot(conn)
        finally:
            await conn.close()
    finally:
        await drop_database(pg_server, reference)
