"""Out-of-order deliveries end in the newest state; same-second ties ask Stripe."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.events import subscription_obj
from tests.conftest import AppFactory
from tests.support import values
from tests.support.database import Conn
from tests.support.webhooks import (
    PERIOD_END,
    T0,
    deliver_ok,
    invoice_event,
    subscription_event,
)


def lifecycle(n: int) -> list[dict[str, Any]]:
    """created incomplete → updated active → invoice paid → updated with a new price."""
    ids = {"sub": f"sub_{n}", "customer": f"cus_{n}", "queue_customer_id": f"cust_{n}"}
    return [
        subscription_event(
            "customer.subscription.created", status="incomplete", created=T0 + 1, **ids
        ),
        subscription_event("customer.subscription.updated", status="active", created=T0 + 2, **ids),
        invoice_event(
            "invoice.paid",
            invoice=f"in_{n}",
            customer=ids["customer"],
            sub=ids["sub"],
            created=T0 + 3,
        ),
        subscription_event(
            "customer.subscription.updated",
            status="active",
            price=values.PRICE_PRO_PLUS,
            period_end=PERIOD_END + 86_400,
            created=T0 + 4,
            **ids,
        ),
    ]


async def test_every_permutation_ends_in_the_newest_state(
    client: httpx.AsyncClient, db: Conn
) -> None:
    permutations = list(itertools.permutations(range(4)))
    assert len(permutations) == 24
    for n, order in enumerate(permutations):
        events = lifecycle(n)
        outcomes = [await deliver_ok(client, events[i]) for i in order]
        assert set(outcomes) <= {"applied", "stale"}
        sub = await db.fetchrow(
            "SELECT status, price_id, plan_tier, current_period_end"
            " FROM billing_subscription WHERE stripe_subscription_id = $1",
            f"sub_{n}",
        )
        assert dict(sub) | {"current_period_end": None} == {
            "status": "active",
            "price_id": values.PRICE_PRO_PLUS,
            "plan_tier": "pro_plus",
            "current_period_end": None,
        }, order
        assert int(sub["current_period_end"].timestamp()) == PERIOD_END + 86_400
        invoice = await db.fetchval(
            "SELECT status FROM billing_invoice WHERE stripe_invoice_id = $1", f"in_{n}"
        )
        assert invoice == "paid", order
        mirror = await db.fetchrow(
            "SELECT plan_tier, status, entitled FROM billing_subscription_mirror"
            " WHERE queue_customer_id = $1",
            f"cust_{n}",
        )
        assert dict(mirror) == {"plan_tier": "pro_plus", "status": "active", "entitled": True}
        processed = await db.fetchval(
            "SELECT count(*) FROM processed_stripe_events WHERE stripe_customer_id = $1",
            f"cus_{n}",
        )
        assert processed == 4


async def test_older_event_is_stale_and_recorded(client: httpx.AsyncClient, db: Conn) -> None:
    newer = subscription_event("customer.subscription.updated", status="canceled", created=T0 + 9)
    older = subscription_event("customer.subscription.updated", status="active", created=T0 + 1)
    assert await deliver_ok(client, newer) == "applied"
    assert await deliver_ok(client, older) == "stale"
    assert await db.fetchval("SELECT status FROM billing_subscription") == "canceled"
    assert (
        await db.fetchval(
            "SELECT outcome FROM processed_stripe_events WHERE event_id = $1", older["id"]
        )
        == "stale"
    )
    assert (
        await db.fetchval(
            "SELECT count(*) FROM billing_action_log WHERE event_id = $1", older["id"]
        )
        == 0
    )


async def test_same_second_conflict_stores_what_stripe_says(
    client: httpx.AsyncClient, db: Conn, stripe_double: StripeDouble
) -> None:
    double = stripe_double
    current = subscription_obj(
        "sub_1",
        "cus_1",
        "active",
        values.PRICE_PRO,
        PERIOD_END,
        cancel_at_period_end=True,
        metadata={"queue_customer_id": "cust_1"},
    )
    double.put_subscription(current)

    first = subscription_event("customer.subscription.updated", status="active", created=T0 + 5)
    second = subscription_event("customer.subscription.updated", status="past_due", created=T0 + 5)
    assert await deliver_ok(client, first) == "applied"
    assert await deliver_ok(client, second) == "applied"

    row = await db.fetchrow("SELECT status, cancel_at_period_end FROM billing_subscription")
    assert dict(row) == {"status": "active", "cancel_at_period_end": True}
    assert len(double.requests_to("GET", "/v1/subscriptions/sub_1")) == 1


async def test_same_second_identical_state_needs_no_stripe_call(
    client: httpx.AsyncClient, db: Conn
) -> None:
    first = subscription_event("customer.subscription.updated", status="active", created=T0 + 5)
    again = subscription_event("customer.subscription.updated", status="active", created=T0 + 5)
    assert await deliver_ok(client, first) == "applied"
    assert await deliver_ok(client, again) == "applied"
    assert await db.fetchval("SELECT status FROM billing_subscription") == "active"


async def test_same_second_without_stripe_key_keeps_the_later_delivery(
    app_factory: AppFactory, db: Conn
) -> None:
    async with app_factory(stripe_restricted_key=None) as client:
        await _tie_without_stripe(client, db)


async def _tie_without_stripe(client: httpx.AsyncClient, db: Conn) -> None:
    first = subscription_event("customer.subscription.updated", status="active", created=T0 + 5)
    second = subscription_event("customer.subscription.updated", status="unpaid", created=T0 + 5)
    await deliver_ok(client, first)
    assert await deliver_ok(client, second) == "applied"
    assert await db.fetchval("SELECT status FROM billing_subscription") == "unpaid"
