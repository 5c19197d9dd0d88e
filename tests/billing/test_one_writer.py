"""One writer of subscriptions: every path stores a Stripe subscription the same way.

The webhook, replay, reconcile, Checkout completion (a session carrying its
subscription) and the subscribe flow all parse the object with one parser and store it
with one SQL function (billing_store_subscription). A subscription of several items
is where they used to disagree (the subscribe flow read the first item only): here,
for each path, the row it stores equals the row the webhook stores for the same object.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from raxx_queue.plans import price_tiers
from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.events import (
    build_event,
    checkout_session_obj,
    customer_obj,
    subscription_obj,
)
from raxx_queue.simulator.objects import subscription_item_obj
from raxx_queue.webhooks.pipeline import EventContext
from raxx_queue.webhooks.replay import list_events, replay_events
from tests.billing.support import subscribe_body
from tests.conftest import AppClient
from tests.support import values
from tests.support.database import Conn, truncate_all
from tests.support.webhooks import PERIOD_END, T0, deliver_ok

Json = dict[str, Any]
COLUMNS = (
    "stripe_subscription_id, stripe_customer_id, status, price_id, plan_tier,"
    " current_period_start, current_period_end, cancel_at_period_end, trial_end,"
    " canceled_at, ended_at, grace_until, payment_failure_count, stripe_created_at"
)
# later than the first item's: the period the subscription as a whole runs to
ADD_ON_PERIOD_END = PERIOD_END + 86_400


def with_add_on(subscription: Json) -> None:
    """A pro_plus item beside the subscription's first (pro) item."""
    first = subscription["items"]["data"][0]
    subscription["items"]["data"].append(
        subscription_item_obj(
            "si_add_on",
            subscription["id"],
            values.PRICE_PRO_PLUS,
            period_start=first["current_period_start"],
            period_end=first["current_period_end"] + 86_400,
        )
    )


def multi_item_subscription() -> Json:
    subscription = subscription_obj(
        "sub_multi",
        "cus_multi",
        "active",
        values.PRICE_PRO,
        PERIOD_END,
        created=T0 - 86_400,
        metadata={"queue_customer_id": "qc_multi"},
    )
    with_add_on(subscription)
    return subscription


async def stored(db: Conn) -> list[dict[str, Any]]:
    rows = await db.fetch(f"SELECT {COLUMNS} FROM billing_subscription")  # noqa: S608
    return [dict(r) for r in rows]


async def known_customer(client: AppClient, double: StripeDouble) -> None:
    customer = customer_obj("cus_multi", "ada@example.com", "Ada L", "qc_multi", created=T0)
    double.put_customer(customer)
    await deliver_ok(client, build_event("customer.created", customer, created=T0 - 10))


async def by_webhook(client: AppClient, double: StripeDouble, subscription: Json) -> None:
    event = build_event("customer.subscription.updated", subscription, created=T0)
    await deliver_ok(client, event)


async def by_replay(client: AppClient, double: StripeDouble, subscription: Json) -> None:
    event = build_event("customer.subscription.updated", subscription, created=T0)
    double.add_event(event, delivered=False)
    services = client.services
    assert services.stripe is not None
    context = EventContext(price_tiers(services.settings), grace_days=7, source="replay")
    events = await list_events(services.stripe, int(time.time()) - 86_400)
    report = await replay_events(services.db, services.stripe, events, context)
    assert report.outcomes == {"applied": 1}


async def by_reconcile(client: AppClient, double: StripeDouble, subscription: Json) -> None:
    double.put_subscription(subscription)
    response = await client.post(
        "/api/internal/billing/reconcile",
        json={"queue_customer_id": "qc_multi"},
        headers=values.CONSOLE,
    )
    assert response.status_code == 200, response.text
    assert [c["object"] for c in response.json()["changes"]] == ["subscription"]


async def by_checkout(client: AppClient, double: StripeDouble, subscription: Json) -> None:
    session = checkout_session_obj("cs_multi", "cus_multi", "sub_multi", "qc_multi", created=T0)
    session["subscription"] = subscription  # carried expanded
    await deliver_ok(client, build_event("checkout.session.completed", session, created=T0))


Path = Callable[[AppClient, StripeDouble, Json], Awaitable[None]]


@pytest.mark.parametrize(
    "path",
    [by_replay, by_reconcile, by_checkout],
    ids=["replay", "reconcile", "checkout completion"],
)
async def test_a_multi_item_subscription_is_stored_as_the_webhook_stores_it(
    client: AppClient, stripe_double: StripeDouble, db: Conn, clean_db: str, path: Path
) -> None:
    subscription = multi_item_subscription()
    await known_customer(client, stripe_double)
    await by_webhook(client, stripe_double, subscription)
    by_webhook_rows = await stored(db)
    # the best tier across items, and the period of the item that runs longest
    [row] = by_webhook_rows
    assert (row["plan_tier"], row["price_id"]) == ("pro_plus", values.PRICE_PRO_PLUS)
    assert int(row["current_period_end"].timestamp()) == ADD_ON_PERIOD_END

    await truncate_all(clean_db)
    await known_customer(client, stripe_double)
    await path(client, stripe_double, subscription)
    assert await stored(db) == by_webhook_rows


async def test_subscribe_stores_a_multi_item_answer_as_the_webhook_stores_it(
    client: AppClient, stripe_double: StripeDouble, db: Conn, clean_db: str
) -> None:
    stripe_double.amend_created("/v1/subscriptions", with_add_on)
    response = await client.post(
        "/api/v1/billing/subscribe", json=subscribe_body(), headers=values.RAPTOR
    )
    assert response.status_code == 201, response.text
    by_subscribe = await stored(db)
    [row] = by_subscribe
    assert (row["plan_tier"], row["price_id"]) == ("pro_plus", values.PRICE_PRO_PLUS)

    [subscription] = stripe_double.subscriptions
    await truncate_all(clean_db)
    event = build_event("customer.subscription.created", subscription, created=int(time.time()))
    await deliver_ok(client, event)
    assert await stored(db) == by_subscribe
