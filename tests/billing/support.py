"""Bodies, seeds and row reads shared by the billing flow tests."""

from __future__ import annotations

import json
from typing import Any

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.objects import customer_obj, subscription_obj
from raxx_queue.simulator.recording import RecordedRequest
from tests.support import seed, values
from tests.support.database import Conn

EMAIL = "jenny.rosen@example.com"
NAME = "Jenny Rosen"
CARD = "pm_card_visa"


def subscribe_body(queue_customer_id: str = "qc_1", **changes: Any) -> dict[str, Any]:
    body = {
        "queue_customer_id": queue_customer_id,
        "email": EMAIL,
        "name": NAME,
        "plan_tier": "pro",
        "payment_method_id": CARD,
    }
    return {**body, **changes}


def calls(double: StripeDouble, method: str, path: str) -> list[RecordedRequest]:
    """Recorded requests to exactly this path (requests_to matches a prefix)."""
    return [r for r in double.requests if (r.method, r.path) == (method, path)]


async def linked_customer(
    db: Conn, double: StripeDouble, queue_customer_id: str, stripe_customer_id: str
) -> None:
    """A customer known to Queue and to Stripe."""
    double.put_customer(customer_obj(stripe_customer_id, EMAIL, NAME, queue_customer_id))
    await seed.customer(
        db, queue_customer_id, stripe_customer_id=stripe_customer_id, email=EMAIL, name=NAME
    )


async def subscribed_customer(
    db: Conn, double: StripeDouble, queue_customer_id: str, stripe_customer_id: str, status: str
) -> str:
    """A linked customer with one subscription in `status`, at Stripe and in Queue."""
    await linked_customer(db, double, queue_customer_id, stripe_customer_id)
    subscription_id = f"sub_{queue_customer_id}"
    double.put_subscription(
        subscription_obj(
            subscription_id, stripe_customer_id, status, values.PRICE_PRO, int(seed.NOW.timestamp())
        )
    )
    await seed.subscription(
        db, subscription_id, stripe_customer_id, status=status, price_id=values.PRICE_PRO
    )
    return subscription_id


async def count(db: Conn, table: str) -> int:
    total: int = await db.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - test constant
    return total


async def audit_rows(db: Conn, *, with_access: bool = False) -> list[dict[str, Any]]:
    """The flows' audit rows; the access policy's own rows (access.changed, proved in
    tests/webhooks/test_access_policy.py) only when asked for."""
    rows = await db.fetch(
        "SELECT actor, action, queue_customer_id, stripe_object_id, request_id, summary"
        " FROM billing_action_log WHERE $1 OR action <> 'access.changed' ORDER BY id",
        with_access,
    )
    return [{**row, "summary": json.loads(row["summary"])} for row in rows]


async def nothing_stored(db: Conn) -> bool:
    """No customer, subscription, audit or mirror row."""
    tables = (
        "billing_customer",
        "billing_subscription",
        "billing_action_log",
        "billing_subscription_mirror",
    )
    return all([await count(db, table) == 0 for table in tables])
