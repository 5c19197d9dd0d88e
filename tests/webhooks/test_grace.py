"""Grace after a failed payment, suspension, restoration, expiry, downgrades, deletion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.conftest import AppClient
from tests.support import values
from tests.support.database import Conn
from tests.support.webhooks import (
    T0,
    customer_event,
    deliver_ok,
    invoice_event,
    subscription_event,
)

GRACE = timedelta(days=7)


async def mirror(db: Conn, queue_customer_id: str = "cust_1") -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT plan_tier, status, entitled, grace_until, feature_locked_at, version"
        " FROM billing_subscription_mirror WHERE queue_customer_id = $1",
        queue_customer_id,
    )
    assert row is not None
    return dict(row)


async def read(client: httpx.AsyncClient, queue_customer_id: str = "cust_1") -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/billing/subscriptions/{queue_customer_id}", headers=values.RAPTOR
    )
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


async def test_first_failure_keeps_access_until_grace_ends(
    client: httpx.AsyncClient, db: Conn
) -> None:
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    failed = invoice_event("invoice.payment_failed", status="open", created=T0 + 10)
    assert await deliver_ok(client, failed) == "applied"

    expected_grace = datetime.fromtimestamp(T0 + 10, UTC) + GRACE
    row = await mirror(db)
    assert row["status"] == "past_due"
    assert row["entitled"] is True
    assert row["plan_tier"] == "pro"
    assert row["grace_until"] == expected_grace
    body = await read(client)
    assert body["entitled"] is True
    assert body["grace_until"].startswith(expected_grace.isoformat()[:19])


async def test_second_failure_in_the_window_ends_access_and_paid_restores_it(
    client: httpx.AsyncClient, db: Conn
) -> None:
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    await deliver_ok(
        client, invoice_event("invoice.payment_failed", status="open", created=T0 + 10)
    )
    await deliver_ok(
        client,
        invoice_event("invoice.payment_failed", status="open", created=T0 + 20, attempt_count=2),
    )
    suspended = await mirror(db)
    assert suspended["entitled"] is False
    assert suspended["plan_tier"] == "free"
    assert suspended["feature_locked_at"] is not None
    assert (await read(client))["entitled"] is False

    await deliver_ok(client, invoice_event("invoice.paid", status="paid", created=T0 + 30))
    restored = await mirror(db)
    assert restored["entitled"] is True
    assert restored["status"] == "active"
    assert restored["grace_until"] is None
    assert restored["feature_locked_at"] is None
    assert restored["plan_tier"] == "pro"


async def test_unpaid_ends_access_at_once(client: httpx.AsyncClient, db: Conn) -> None:
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    await deliver_ok(
        client, invoice_event("invoice.payment_failed", status="open", created=T0 + 10)
    )
    assert (await mirror(db))["entitled"] is True
    await deliver_ok(
        client,
        subscription_event("customer.subscription.updated", status="unpaid", created=T0 + 11),
    )
    row = await mirror(db)
    assert row["entitled"] is False
    assert row["status"] == "unpaid"


async def test_past_due_before_the_failure_event_starts_grace(
    client: httpx.AsyncClient, db: Conn
) -> None:
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    await deliver_ok(
        client,
        subscription_event("customer.subscription.updated", status="past_due", created=T0 + 10),
    )
    assert (await mirror(db))["entitled"] is True
    # the failure that caused it arrives late: still the first failure, access kept,
    # and the window runs from the failure, whichever arrived first
    await deliver_ok(client, invoice_event("invoice.payment_failed", status="open", created=T0 + 9))
    row = await mirror(db)
    assert row["entitled"] is True
    assert row["grace_until"] == datetime.fromtimestamp(T0 + 9, UTC) + GRACE


async def test_grace_expiry_without_an_event_is_applied_by_the_job(
    client: AppClient, db: Conn
) -> None:
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    await deliver_ok(
        client, invoice_event("invoice.payment_failed", status="open", created=T0 + 10)
    )
    before = await mirror(db)
    assert before["entitled"] is True
    # time passes: the grace window is now over, and no event will say so
    past = datetime.now(UTC) - timedelta(seconds=1)
    await db.execute("UPDATE billing_subscription SET grace_until = $1", past)
    await db.execute(
        "UPDATE billing_subscription_mirror SET grace_until = $1, access_due_at = $1", past
    )

    job = client.services.workers.grace
    assert job is not None
    assert await job.run_once() == 1
    after = await mirror(db)
    assert after["entitled"] is False
    assert after["feature_locked_at"] is not None
    assert after["version"] == before["version"] + 1
    audit = await db.fetch(
        "SELECT actor, queue_customer_id FROM billing_action_log WHERE action = 'grace.expired'"
    )
    assert [dict(r) for r in audit] == [{"actor": "system", "queue_customer_id": "cust_1"}]
    assert await job.run_once() == 0


async def test_an_invoice_that_writes_nothing_the_mirror_reads_leaves_it_to_the_job(
    client: AppClient, db: Conn
) -> None:
    """invoice.finalized writes only its invoice: the mirror is not recomputed after it
    (billing_invoice_mirror), so a grace window that ran out meanwhile is still the
    expiry job's to apply; a payment failure, which writes the subscription, recomputes
    it at once."""
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    await deliver_ok(
        client, invoice_event("invoice.payment_failed", status="open", created=T0 + 10)
    )
    before = await mirror(db)
    past = datetime.now(UTC) - timedelta(seconds=1)
    await db.execute("UPDATE billing_subscription SET grace_until = $1", past)

    finalized = invoice_event("invoice.finalized", invoice="in_2", status="open", created=T0 + 20)
    assert await deliver_ok(client, finalized) == "applied"
    assert await mirror(db) == before
    recorded = await db.fetchval(
        "SELECT summary ?| '{mirror,access}' FROM billing_action_log WHERE event_id = $1",
        finalized["id"],
    )
    assert recorded is False

    failed = invoice_event(
        "invoice.payment_failed", invoice="in_2", status="open", created=T0 + 30, attempt_count=2
    )
    assert await deliver_ok(client, failed) == "applied"
    after = await mirror(db)
    assert (after["entitled"], after["version"]) == (False, before["version"] + 1)
    access = await db.fetchval(
        "SELECT summary #>> '{access,after,access}' FROM billing_action_log WHERE event_id = $1",
        failed["id"],
    )
    assert access == "suspended"


async def test_downgrade_locks_features_and_upgrade_clears(
    client: httpx.AsyncClient, db: Conn
) -> None:
    await deliver_ok(
        client,
        subscription_event(
            "customer.subscription.created", price=values.PRICE_PRO_PLUS, created=T0
        ),
    )
    assert (await mirror(db))["feature_locked_at"] is None
    await deliver_ok(
        client,
        subscription_event("customer.subscription.updated", price=values.PRICE_PRO, created=T0 + 5),
    )
    down = await mirror(db)
    assert down["plan_tier"] == "pro"
    assert down["feature_locked_at"] is not None
    assert (await read(client))["feature_locked_at"] is not None

    await deliver_ok(
        client,
        subscription_event(
            "customer.subscription.updated", price=values.PRICE_PRO_PLUS, created=T0 + 9
        ),
    )
    up = await mirror(db)
    assert up["plan_tier"] == "pro_plus"
    assert up["feature_locked_at"] is None


async def test_customer_deleted_ends_entitlement(client: httpx.AsyncClient, db: Conn) -> None:
    await deliver_ok(client, customer_event("customer.created", created=T0))
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    assert (await mirror(db))["entitled"] is True
    await deliver_ok(client, customer_event("customer.deleted", created=T0 + 5))
    row = await mirror(db)
    assert row["entitled"] is False
    assert row["status"] == "canceled"
    assert await db.fetchval("SELECT deleted_at IS NOT NULL FROM billing_customer") is True
    body = (await client.get("/api/v1/billing/customers/cust_1", headers=values.CONSOLE)).json()
    assert body["deleted"] is True
    assert body["subscription"]["entitled"] is False


async def test_reordered_failures_still_end_access(client: httpx.AsyncClient, db: Conn) -> None:
    """The second attempt's failure arriving first still counts as the second failure."""
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    second = invoice_event(
        "invoice.payment_failed", status="open", created=T0 + 20, attempt_count=2
    )
    first = invoice_event("invoice.payment_failed", status="open", created=T0 + 10)
    await deliver_ok(client, second)
    assert await deliver_ok(client, first) == "stale"
    assert (await mirror(db))["entitled"] is False


async def test_payment_before_its_failure_arrives_keeps_access(
    client: httpx.AsyncClient, db: Conn
) -> None:
    await deliver_ok(client, subscription_event("customer.subscription.created", created=T0))
    await deliver_ok(client, invoice_event("invoice.paid", invoice="in_2", created=T0 + 30))
    await deliver_ok(
        client,
        invoice_event("invoice.payment_failed", invoice="in_1", status="open", created=T0 + 10),
    )
    row = await mirror(db)
    assert row["entitled"] is True
    assert row["status"] == "active"
    assert row["grace_until"] is None
