"""Handlers for each event family, legacy payload shapes, unknown types, failures."""

from __future__ import annotations

import httpx

from raxx_queue.simulator.events import build_event, checkout_session_obj
from tests.support import values
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.webhooks import (
    PERIOD_END,
    T0,
    customer_event,
    deliver,
    deliver_ok,
    invoice_event,
    subscription_event,
)

EMAIL = "jenny.rosen@example.com"


async def test_customer_events_upsert_pii_and_link(client: httpx.AsyncClient, db: Conn) -> None:
    await deliver_ok(client, customer_event("customer.created", created=T0))
    await deliver_ok(
        client,
        customer_event("customer.updated", email="new@example.com", name="J R", created=T0 + 1),
    )
    row = await db.fetchrow("SELECT * FROM billing_customer")
    assert row["queue_customer_id"] == "cust_1"
    assert row["stripe_customer_id"] == "cus_1"
    assert row["billing_email"] == "new@example.com"
    assert row["billing_name"] == "J R"
    # an older update does not overwrite newer PII
    assert await deliver_ok(client, customer_event("customer.updated", created=T0)) == "stale"
    assert await db.fetchval("SELECT billing_email FROM billing_customer") == "new@example.com"


async def test_mirror_and_audit_hold_no_pii(client: httpx.AsyncClient, db: Conn) -> None:
    await deliver_ok(client, customer_event("customer.created", created=T0))
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    for table in ("billing_subscription_mirror", "billing_action_log", "billing_subscription"):
        dump = await db.fetchval(f"SELECT coalesce(json_agg(t)::text, '') FROM {table} AS t")  # noqa: S608
        assert EMAIL not in dump, table
        assert "Jenny" not in dump, table


async def test_subscription_created_before_its_customer_links_later(
    client: httpx.AsyncClient, db: Conn
) -> None:
    await deliver_ok(
        client,
        subscription_event("customer.subscription.created", queue_customer_id=None, created=T0),
    )
    assert await db.fetchval("SELECT count(*) FROM billing_subscription_mirror") == 0
    await deliver_ok(client, customer_event("customer.created", created=T0 + 1))
    mirror = await db.fetchrow("SELECT entitled, plan_tier FROM billing_subscription_mirror")
    assert dict(mirror) == {"entitled": True, "plan_tier": "pro"}


async def test_checkout_completed_links_a_platform_customer(
    client: httpx.AsyncClient, db: Conn
) -> None:
    await db.execute("INSERT INTO billing_customer (queue_customer_id) VALUES ('cust_9')")
    await deliver_ok(
        client,
        subscription_event(
            "customer.subscription.created",
            customer="cus_9",
            sub="sub_9",
            queue_customer_id=None,
            created=T0,
        ),
    )
    session = checkout_session_obj("cs_test_1", "cus_9", "sub_9", "cust_9", created=T0 + 1)
    await deliver_ok(client, build_event("checkout.session.completed", session, created=T0 + 1))
    rows = await db.fetch("SELECT queue_customer_id, stripe_customer_id FROM billing_customer")
    assert [dict(r) for r in rows] == [
        {"queue_customer_id": "cust_9", "stripe_customer_id": "cus_9"}
    ]
    body = (await client.get("/api/v1/billing/subscriptions/cust_9", headers=values.RAPTOR)).json()
    assert body["entitled"] is True
    assert body["stripe_subscription_id"] == "sub_9"


async def test_invoice_events(client: httpx.AsyncClient, db: Conn) -> None:
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    await deliver_ok(client, invoice_event("invoice.created", status="draft", created=T0 + 1))
    await deliver_ok(client, invoice_event("invoice.finalized", status="open", created=T0 + 2))
    row = await db.fetchrow(
        "SELECT status, stripe_subscription_id, amount_due FROM billing_invoice"
    )
    assert dict(row) == {"status": "open", "stripe_subscription_id": "sub_1", "amount_due": 2000}
    await deliver_ok(client, invoice_event("invoice.payment_succeeded", created=T0 + 3))
    assert await db.fetchval("SELECT status FROM billing_invoice") == "paid"
    body = (await client.get("/api/v1/billing/invoices/cust_1", headers=values.CONSOLE)).json()
    assert [i["stripe_invoice_id"] for i in body["data"]] == ["in_1"]


async def test_record_only_events_are_audited(client: httpx.AsyncClient, db: Conn) -> None:
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    for event_type in ("customer.subscription.trial_will_end",):
        event = subscription_event(event_type, status="trialing", created=T0 + 1)
        assert await deliver_ok(client, event) == "applied"
    action = invoice_event("invoice.payment_action_required", status="open", created=T0 + 2)
    assert await deliver_ok(client, action) == "applied"
    upcoming = invoice_event("invoice.upcoming", status="draft", created=T0 + 3)
    del upcoming["data"]["object"]["id"]
    assert await deliver_ok(client, upcoming) == "applied"
    actions = [
        r["action"] for r in await db.fetch("SELECT action FROM billing_action_log ORDER BY id")
    ]
    assert actions == [
        "stripe.customer.subscription.created",
        "stripe.customer.subscription.trial_will_end",
        "stripe.invoice.payment_action_required",
        "stripe.invoice.upcoming",
    ]
    assert await db.fetchval("SELECT count(*) FROM billing_invoice") == 0
    assert await db.fetchval("SELECT status FROM billing_subscription") == "active"


async def test_unknown_types_are_ignored_and_recorded(client: httpx.AsyncClient, db: Conn) -> None:
    event = build_event("payout.paid", {"id": "po_1", "object": "payout"}, created=T0)
    assert await deliver_ok(client, event) == "ignored"
    assert await db.fetchval("SELECT outcome FROM processed_stripe_events") == "ignored"
    assert await db.fetchval("SELECT count(*) FROM billing_action_log") == 0
    assert (await deliver(client, event)).json()["outcome"] == "duplicate"


async def test_signed_but_malformed_event_is_400(client: httpx.AsyncClient, db: Conn) -> None:
    event = build_event("customer.subscription.updated", {"object": "subscription"}, created=T0)
    response = await deliver(client, event)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_EVENT"
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == 0


async def test_legacy_shapes(client: httpx.AsyncClient, db: Conn) -> None:
    legacy_sub = subscription_event(
        "customer.subscription.created", legacy_shape=True, period_end=PERIOD_END, created=T0
    )
    items = legacy_sub["data"]["object"]["items"]["data"]
    assert "current_period_end" not in items[0]
    assert legacy_sub["data"]["object"]["current_period_end"] == PERIOD_END
    await deliver_ok(client, legacy_sub)
    period_end = await db.fetchval("SELECT current_period_end FROM billing_subscription")
    assert int(period_end.timestamp()) == PERIOD_END

    failed = invoice_event(
        "invoice.payment_failed", status="open", legacy_shape=True, created=T0 + 5
    )
    assert "parent" not in failed["data"]["object"]
    await deliver_ok(client, failed)
    row = await db.fetchrow("SELECT stripe_subscription_id FROM billing_invoice")
    assert row["stripe_subscription_id"] == "sub_1"
    assert await db.fetchval("SELECT status FROM billing_subscription") == "past_due"


async def test_database_failure_mid_transaction_leaves_nothing(
    client: httpx.AsyncClient, db: Conn
) -> None:
    await db.execute(
        """
        CREATE FUNCTION fail_on_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected failure'; END $$;
        CREATE TRIGGER fail_on_audit BEFORE INSERT ON billing_action_log
            FOR EACH ROW EXECUTE FUNCTION fail_on_audit();
        """
    )
    event = subscription_event("customer.subscription.created", created=T0)
    try:
        response = await deliver(client, event)
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "INTERNAL_ERROR"
        for table in (
            "processed_stripe_events",
            "billing_subscription",
            "billing_customer",
            "billing_subscription_mirror",
            "billing_action_log",
        ):
            assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608
    finally:
        await db.execute(
            "DROP TRIGGER fail_on_audit ON billing_action_log; DROP FUNCTION fail_on_audit()"
        )
    assert await deliver_ok(client, event) == "applied"
    assert await deliver_ok(client, event) == "duplicate"
    assert await db.fetchval("SELECT count(*) FROM billing_action_log") == 1


async def test_webhook_logs_hold_no_pii_or_secret(
    client: httpx.AsyncClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    await deliver_ok(client, customer_event("customer.created", created=T0))
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    # one line per delivery, carrying what became of the event
    requests = [line for line in captured_logs.entries if line["event"] == "request"]
    assert [line["outcome"] for line in requests] == ["applied", "applied"]
    assert all(line["event_id"].startswith("evt_") for line in requests)
    captured_logs.assert_free_of([*values.SECRETS, EMAIL, "Jenny Rosen"])
