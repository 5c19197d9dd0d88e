"""POST /api/v1/billing/webhook/thin: thin events verified, read with the SDK, acted on."""

from __future__ import annotations

import time
from typing import Any

import httpx

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.events import (
    build_event,
    customer_obj,
    invoice_obj,
    signed,
    signed_multi,
    subscription_obj,
)
from raxx_queue.simulator.fixtures import fixture
from raxx_queue.simulator.thin import (
    event_generation_failure,
    notification_of,
    thin_for_snapshot,
    v2_event,
)
from raxx_queue.webhooks.changes import build_change
from tests.conftest import AppClient, AppFactory
from tests.support import values
from tests.support.database import Conn
from tests.support.webhooks import PERIOD_END, T0, deliver, deliver_ok

THIN = "/api/v1/billing/webhook/thin"


async def post_thin(
    client: httpx.AsyncClient,
    notification: dict[str, Any],
    *,
    secret: str = values.THIN_WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> httpx.Response:
    body, header = signed(notification, secret, timestamp=timestamp)
    return await client.post(
        THIN, content=body, headers={"Stripe-Signature": header, "Content-Type": "application/json"}
    )


def _subscription(status: str, *, price: str = values.PRICE_PRO) -> dict[str, Any]:
    return subscription_obj(
        "sub_1",
        "cus_1",
        status,
        price,
        PERIOD_END,
        metadata={"queue_customer_id": "cust_1"},
        created=T0,
    )


def _thin_of(double: StripeDouble, snapshot: dict[str, Any]) -> dict[str, Any]:
    """Stripe's side of a thin event: the snapshot event and the v2 event naming it."""
    double.add_event(snapshot, delivered=False)
    notification, full = thin_for_snapshot(snapshot)
    double.add_v2_event(full)
    return notification


async def test_a_v1_thin_event_applies_its_snapshot_once_whatever_arrives_after(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    snapshot = build_event("customer.subscription.created", _subscription("active"), created=T0)
    notification = _thin_of(stripe_double, snapshot)

    first = await post_thin(client, notification)
    snapshot_delivery = await deliver(client, snapshot)
    thin_retry = await post_thin(client, notification)

    assert first.status_code == 200, first.text
    assert first.json() == {
        "received": True,
        "event_id": notification["id"],
        "type": "v1.customer.subscription.created",
        "outcome": "applied",
        "snapshot_event_id": snapshot["id"],
        "reconciled": None,
    }
    assert snapshot_delivery.json()["outcome"] == "duplicate"
    assert thin_retry.json()["outcome"] == "duplicate"
    rows = await db.fetch(
        "SELECT event_id, type, outcome, source FROM processed_stripe_events ORDER BY type"
    )
    assert [dict(r) for r in rows] == [
        {
            "event_id": snapshot["id"],
            "type": "customer.subscription.created",
            "outcome": "applied",
            "source": "thin",
        },
        {
            "event_id": notification["id"],
            "type": "v1.customer.subscription.created",
            "outcome": "applied",
            "source": "thin",
        },
    ]
    audit = await db.fetch("SELECT actor, action, event_id FROM billing_action_log")
    assert [dict(r) for r in audit] == [
        {
            "actor": "stripe",
            "action": "stripe.customer.subscription.created",
            "event_id": snapshot["id"],
        }
    ]
    mirror = await db.fetchrow("SELECT status, entitled FROM billing_subscription_mirror")
    assert dict(mirror) == {"status": "active", "entitled": True}
    # Queue asked for the v2 event, then the snapshot it named
    assert [r.path for r in stripe_double.requests if r.method == "GET"] == [
        f"/v2/core/events/{notification['id']}",
        f"/v1/events/{snapshot['id']}",
    ]


async def test_a_thin_event_after_its_snapshot_webhook_is_a_duplicate(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    snapshot = build_event("invoice.paid", invoice_obj("in_1", "cus_1", None, "paid"), created=T0)
    notification = _thin_of(stripe_double, snapshot)
    await deliver_ok(client, snapshot)

    response = await post_thin(client, notification)

    assert response.json()["outcome"] == "duplicate"
    assert response.json()["snapshot_event_id"] == snapshot["id"]
    assert await db.fetchval("SELECT count(*) FROM billing_action_log") == 1
    thin_row = await db.fetchrow(
        "SELECT outcome, source FROM processed_stripe_events WHERE event_id = $1",
        notification["id"],
    )
    assert dict(thin_row) == {"outcome": "ignored", "source": "thin"}


async def test_thin_customer_and_dispute_events_go_through_the_snapshot_path(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    customer = build_event(
        "customer.updated", customer_obj("cus_1", "a@example.com", None, "cust_1"), created=T0
    )
    dispute = fixture("dispute")
    disputed = build_event("charge.dispute.created", dispute, created=T0 + 1)
    outcomes = {}
    for snapshot in (customer, disputed):
        response = await post_thin(client, _thin_of(stripe_double, snapshot))
        assert response.status_code == 200, response.text
        assert response.json()["snapshot_event_id"] == snapshot["id"]
        outcomes[snapshot["type"]] = response.json()["outcome"]

    # a dispute is applied as Queue applies its snapshot webhook, whatever that does
    change = build_change("charge.dispute.created", dispute, {})
    assert outcomes == {
        "customer.updated": "applied",
        "charge.dispute.created": "ignored" if change.family == "ignored" else "applied",
    }
    recorded = await db.fetch(
        "SELECT event_id FROM processed_stripe_events WHERE event_id = ANY($1::text[])",
        [customer["id"], disputed["id"]],
    )
    assert len(recorded) == 2


async def test_a_health_alert_rereads_the_subscription_and_updates_the_mirror(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    customer = customer_obj("cus_1", "a@example.com", None, "cust_1", created=T0)
    stripe_double.put_customer(customer)
    stripe_double.put_subscription(_subscription("active"))
    await deliver_ok(client, build_event("customer.created", customer, created=T0))
    await deliver_ok(
        client, build_event("customer.subscription.created", _subscription("active"), created=T0)
    )
    before = await db.fetchrow("SELECT status, version FROM billing_subscription_mirror")
    # Stripe moved the subscription on, failed to generate the event, then said so
    stripe_double.put_subscription(_subscription("active", price=values.PRICE_PRO_PLUS))
    notification, full = event_generation_failure(
        "customer.subscription.updated", "sub_1", "subscription", resolved_at=time.time()
    )
    stripe_double.add_v2_event(full)

    response = await post_thin(client, notification)
    again = await post_thin(client, notification)

    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": True,
        "event_id": notification["id"],
        "type": "v2.core.health.event_generation_failure.resolved",
        "outcome": "applied",
        "snapshot_event_id": None,
        "reconciled": {"checked": 1, "drifted": 1},
    }
    assert again.json()["outcome"] == "duplicate"
    after = await db.fetchrow("SELECT plan_tier, version FROM billing_subscription_mirror")
    assert after["plan_tier"] == "pro_plus"
    assert after["version"] > before["version"]
    repair = await db.fetch(
        "SELECT actor, stripe_object_id FROM billing_action_log WHERE actor = 'reconcile'"
    )
    assert [dict(r) for r in repair] == [{"actor": "reconcile", "stripe_object_id": "sub_1"}]
    assert stripe_double.requests_to("GET", "/v1/subscriptions/sub_1")


async def test_unknown_thin_types_are_recorded_and_acknowledged(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    meter = notification_of(
        v2_event(
            "v1.billing.meter.error_report_triggered",
            related={"id": "mtr_1", "type": "billing.meter", "url": "/v1/billing/meters/mtr_1"},
        )
    )
    account = notification_of(v2_event("v2.core.account.updated"))

    answers = [await post_thin(client, n) for n in (meter, account)]

    assert [a.status_code for a in answers] == [200, 200]
    assert [a.json()["outcome"] for a in answers] == ["ignored", "ignored"]
    rows = await db.fetch("SELECT type, outcome, source FROM processed_stripe_events ORDER BY type")
    assert [tuple(r) for r in rows] == [
        ("v1.billing.meter.error_report_triggered", "ignored", "thin"),
        ("v2.core.account.updated", "ignored", "thin"),
    ]
    assert not stripe_double.requests  # nothing to fetch for them


async def test_thin_signatures_use_their_own_secrets_both_ways_in_time(
    app_factory: AppFactory, db: Conn, stripe_double: StripeDouble
) -> None:
    notification = notification_of(v2_event("v2.core.account.updated"))
    secrets = f"{values.THIN_WEBHOOK_SECRET},{values.OLD_THIN_WEBHOOK_SECRET}"
    async with app_factory(stripe_thin_webhook_secret=secrets) as client:
        old = await post_thin(client, notification, secret=values.OLD_THIN_WEBHOOK_SECRET)
        body, header = signed_multi(
            notification, [values.OLD_THIN_WEBHOOK_SECRET, values.THIN_WEBHOOK_SECRET]
        )
        both = await client.post(THIN, content=body, headers={"Stripe-Signature": header})
        snapshot_secret = await post_thin(client, notification, secret=values.WEBHOOK_SECRET)
        future = await post_thin(client, notification, timestamp=int(time.time()) + 3600)
        stale = await post_thin(client, notification, timestamp=int(time.time()) - 3600)
    async with app_factory(stripe_thin_webhook_secret="") as unconfigured:
        none = await post_thin(unconfigured, notification)

    assert old.status_code == 200
    assert both.json()["outcome"] == "duplicate"
    for refused in (snapshot_secret, future, stale):
        assert refused.status_code == 400
        assert refused.json()["error"]["code"] == "INVALID_SIGNATURE"
    assert none.status_code == 503
    assert none.json()["error"]["code"] == "WEBHOOK_NOT_CONFIGURED"
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == 1


async def test_a_snapshot_event_sent_to_the_thin_endpoint_is_refused(
    client: AppClient, db: Conn
) -> None:
    snapshot = build_event("customer.subscription.created", _subscription("active"))

    response = await post_thin(client, snapshot)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_EVENT"
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == 0


async def test_stripe_unreachable_is_a_5xx_with_nothing_recorded_and_a_retry_applies(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    snapshot = build_event("customer.subscription.created", _subscription("active"), created=T0)
    notification = _thin_of(stripe_double, snapshot)
    stripe_double.fail_always("/v2/core/events", "server_error")

    failed = await post_thin(client, notification)
    recorded = await db.fetchval("SELECT count(*) FROM processed_stripe_events")
    stripe_double.clear_failures()
    retried = await post_thin(client, notification)

    assert failed.status_code == 502
    assert failed.json()["error"]["code"] == "STRIPE_UNAVAILABLE"
    assert recorded == 0
    assert retried.json()["outcome"] == "applied"


async def test_without_billing_or_a_stripe_key_the_thin_endpoint_is_unavailable(
    app_factory: AppFactory, db: Conn
) -> None:
    notification = notification_of(v2_event("v2.core.account.updated"))
    async with app_factory(flag_queue_billing=False) as off:
        billing_off = await post_thin(off, notification)
    async with app_factory(stripe_restricted_key=None) as keyless:
        no_key = await post_thin(keyless, notification)

    assert billing_off.status_code == 503
    assert billing_off.json()["error"]["code"] == "BILLING_DISABLED"
    assert no_key.status_code == 503
    assert no_key.json()["error"]["code"] == "STRIPE_NOT_CONFIGURED"
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == 0
