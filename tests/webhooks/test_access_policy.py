"""The access policy end to end: each Stripe state's access and reason, in the read and the
mirror, with an audit row naming the rule for every change (docs/access-policy.md)."""

from __future__ import annotations

import httpx

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.fixtures import fixture
from tests.conftest import AppClient, AppFactory
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.webhooks import (
    PERIOD_END,
    T0,
    customer_event,
    deliver_ok,
    invoice_event,
    subscription_event,
)
from tests.webhooks.access_steps import (
    access,
    access_audit,
    dispute_event,
    mirror,
    paid_with_charge,
    read,
    subscribed,
    time_passes_to,
    with_pause,
)


async def test_new_fields_in_the_read_and_the_mirror(client: httpx.AsyncClient, db: Conn) -> None:
    await subscribed(client)
    body = await read(client)
    assert (body["access"], body["access_reason"], body["access_rule"]) == (
        "active",
        None,
        "active",
    )
    assert body["access_changed_at"] is not None
    row = await mirror(db)
    assert (row["access"], row["access_reason"], row["entitled"]) == ("active", None, True)
    assert await access_audit(db) == [
        {
            "actor": "stripe",
            "action": "stripe.customer.subscription.created",
            "event_id": (await db.fetchval("SELECT event_id FROM processed_stripe_events")),
            "rule": "active",
            "from": "none",
            "to": "active",
            "reason": None,
        }
    ]


async def test_dunning_grace_then_suspended_then_restored(
    client: httpx.AsyncClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    await subscribed(client)
    await deliver_ok(
        client, invoice_event("invoice.payment_failed", status="open", created=T0 + 10)
    )
    assert await access(client) == ("grace", "payment_failed", "grace")
    version = (await mirror(db))["version"]
    await deliver_ok(
        client,
        invoice_event("invoice.payment_failed", status="open", created=T0 + 20, attempt_count=2),
    )
    assert await access(client) == ("suspended", "payment_failed", "grace_lapsed")
    assert (await mirror(db))["version"] == version + 1
    await deliver_ok(
        client,
        subscription_event("customer.subscription.updated", status="unpaid", created=T0 + 30),
    )
    assert await access(client) == ("suspended", "unpaid", "unpaid")
    await deliver_ok(client, invoice_event("invoice.paid", status="paid", created=T0 + 40))
    assert await access(client) == ("active", None, "active")
    assert [(a["rule"], a["to"]) for a in await access_audit(db)] == [
        ("active", "active"),
        ("grace", "grace"),
        ("grace_lapsed", "suspended"),
        ("unpaid", "suspended"),
        ("active", "active"),
    ]
    # the log says it too, line by line, with the rule and the event
    logged = [e for e in captured_logs.entries if e.get("event") == "access_changed"]
    assert [(e["access"], e["rule"]) for e in logged] == [
        ("active", "active"),
        ("grace", "grace"),
        ("suspended", "grace_lapsed"),
        ("suspended", "unpaid"),
        ("active", "active"),
    ]
    assert all(e["queue_customer_id"] == "cust_1" and e["event_id"] for e in logged)


async def test_grace_lapsing_is_audited_with_its_rule(client: AppClient, db: Conn) -> None:
    await subscribed(client)
    await deliver_ok(
        client, invoice_event("invoice.payment_failed", status="open", created=T0 + 10)
    )
    await time_passes_to(db, "grace_until")
    job = client.services.workers.grace
    assert job is not None
    assert await job.run_once() == 1
    assert await access(client) == ("suspended", "payment_failed", "grace_lapsed")
    last = (await access_audit(db))[-1]
    assert (last["actor"], last["rule"], last["from"]) == ("system", "grace_lapsed", "grace")


async def test_paused_subscription_is_suspended_and_resumes(
    client: httpx.AsyncClient, db: Conn
) -> None:
    await subscribed(client)
    await deliver_ok(
        client,
        subscription_event("customer.subscription.paused", status="paused", created=T0 + 10),
    )
    assert await access(client) == ("suspended", "paused", "paused")
    assert (await mirror(db))["entitled"] is False
    await deliver_ok(
        client,
        subscription_event("customer.subscription.resumed", status="active", created=T0 + 20),
    )
    assert await access(client) == ("active", None, "active")


async def test_trial_that_ended_without_a_payment_method_pauses(client: httpx.AsyncClient) -> None:
    await subscribed(client, status="trialing")
    assert await access(client) == ("trialing", None, "trialing")
    await deliver_ok(
        client,
        subscription_event("customer.subscription.paused", status="paused", created=T0 + 10),
    )
    assert await access(client) == ("suspended", "paused", "paused")


async def test_paused_collection_keeps_the_paid_period_then_suspends_exactly_once(
    client: AppClient, db: Conn
) -> None:
    await subscribed(client)
    paused = with_pause(
        subscription_event("customer.subscription.updated", created=T0 + 10), "void"
    )
    await deliver_ok(client, paused)
    # the period already paid runs on: access kept, the mirror knows when it ends
    assert await access(client) == ("active", None, "active")
    row = await mirror(db)
    assert row["access_due_at"].timestamp() == PERIOD_END
    stored = await db.fetchrow(
        "SELECT pause_behavior, pause_paid_through FROM billing_subscription"
    )
    assert stored["pause_behavior"] == "void"
    assert stored["pause_paid_through"].timestamp() == PERIOD_END

    await time_passes_to(db, "pause_paid_through")
    job = client.services.workers.grace
    assert job is not None
    assert await job.run_once() == 1
    assert await job.run_once() == 0  # exactly once
    assert await access(client) == ("suspended", "collection_paused", "collection_paused")
    assert (await mirror(db))["version"] == row["version"] + 1
    actions = await db.fetch(
        "SELECT action, actor FROM billing_action_log WHERE actor = 'system' ORDER BY id"
    )
    assert [(r["action"], r["actor"]) for r in actions] == [("collection_pause.began", "system")]
    last = (await access_audit(db))[-1]
    assert (last["action"], last["rule"], last["from"]) == (
        "collection_pause.began",
        "collection_paused",
        "active",
    )

    resumed = with_pause(subscription_event("customer.subscription.updated", created=T0 + 20), None)
    await deliver_ok(client, resumed)
    assert await access(client) == ("active", None, "active")


async def test_dispute_suspends_until_won(client: httpx.AsyncClient, db: Conn) -> None:
    await subscribed(client)
    await deliver_ok(client, paid_with_charge(T0 + 5))
    created = dispute_event("charge.dispute.created", status="needs_response", created=T0 + 10)
    assert await deliver_ok(client, created) == "applied"
    assert await access(client) == ("suspended", "dispute", "dispute")
    assert (await mirror(db))["entitled"] is False
    await deliver_ok(
        client, dispute_event("charge.dispute.updated", status="under_review", created=T0 + 20)
    )
    assert await access(client) == ("suspended", "dispute", "dispute")
    await deliver_ok(client, dispute_event("charge.dispute.closed", status="won", created=T0 + 30))
    assert await access(client) == ("active", None, "active")
    assert [a["rule"] for a in await access_audit(db)] == ["active", "dispute", "active"]


async def test_a_lost_dispute_keeps_access_suspended(client: httpx.AsyncClient) -> None:
    await subscribed(client)
    legacy = invoice_event("invoice.paid", status="paid", created=T0 + 5)
    legacy["data"]["object"]["charge"] = "ch_9"  # the shape before 2025-03-31.basil
    await deliver_ok(client, legacy)
    await deliver_ok(
        client,
        dispute_event(
            "charge.dispute.created", status="needs_response", created=T0 + 10, charge="ch_9"
        ),
    )
    await deliver_ok(
        client,
        dispute_event("charge.dispute.closed", status="lost", created=T0 + 20, charge="ch_9"),
    )
    assert await access(client) == ("suspended", "dispute", "dispute")


async def test_dispute_access_keep_records_the_dispute_and_keeps_access(
    app_factory: AppFactory, db: Conn
) -> None:
    async with app_factory(dispute_access="keep") as client:
        await subscribed(client)
        await deliver_ok(client, paid_with_charge(T0 + 5))
        await deliver_ok(
            client,
            dispute_event("charge.dispute.created", status="needs_response", created=T0 + 10),
        )
        assert await access(client) == ("active", None, "active")
    row = await db.fetchrow("SELECT stripe_customer_id, suspends_access FROM billing_dispute")
    assert dict(row) == {"stripe_customer_id": "cus_1", "suspends_access": False}


async def test_a_dispute_on_a_payment_queue_never_saw_asks_stripe_for_its_customer(
    client: httpx.AsyncClient, db: Conn, stripe_double: StripeDouble
) -> None:
    await subscribed(client)
    charge = fixture("charge")
    charge.update(id="ch_unseen", customer="cus_1")
    stripe_double.put(charge)
    unseen = dispute_event(
        "charge.dispute.created", status="needs_response", created=T0 + 10, charge="ch_unseen"
    )
    assert await deliver_ok(client, unseen) == "applied"
    assert await access(client) == ("suspended", "dispute", "dispute")
    assert stripe_double.requests_to("GET", "/v1/charges/ch_unseen")


async def test_a_dispute_on_a_payment_nobody_knows_is_recorded(
    client: httpx.AsyncClient, db: Conn
) -> None:
    await subscribed(client)
    unknown = dispute_event(
        "charge.dispute.created", status="needs_response", created=T0 + 10, charge="ch_x"
    )
    assert await deliver_ok(client, unknown) == "applied"
    assert await access(client) == ("active", None, "active")
    assert await db.fetchval("SELECT stripe_customer_id FROM billing_dispute") is None


async def test_ended_and_not_begun(client: httpx.AsyncClient) -> None:
    await subscribed(client, status="incomplete")
    assert await access(client) == ("none", "incomplete", "incomplete")
    await deliver_ok(
        client,
        subscription_event(
            "customer.subscription.updated", status="incomplete_expired", created=T0 + 10
        ),
    )
    assert await access(client) == ("ended", "incomplete", "incomplete_expired")
    await deliver_ok(
        client,
        subscription_event(
            "customer.subscription.created", sub="sub_2", status="active", created=T0 + 20
        ),
    )
    assert await access(client) == ("active", None, "active")
    await deliver_ok(
        client,
        subscription_event(
            "customer.subscription.deleted", sub="sub_2", status="canceled", created=T0 + 30
        ),
    )
    assert await access(client) == ("ended", "canceled", "canceled")


async def test_deleted_customer_ends_access(client: httpx.AsyncClient, db: Conn) -> None:
    await deliver_ok(client, customer_event("customer.created", created=T0 - 5))
    await subscribed(client)
    await deliver_ok(client, customer_event("customer.deleted", created=T0 + 10))
    assert await access(client) == ("ended", "customer_deleted", "customer_deleted")
    assert (await mirror(db))["access_reason"] == "customer_deleted"
