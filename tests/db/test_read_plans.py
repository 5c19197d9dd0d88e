"""The paywall's reads touch only the customers they return, however many there are.

A read that ranked every subscription (the current-subscription view flattened into
a join) answers correctly and grows slower with every customer; only the plan shows it.
"""

from __future__ import annotations

from typing import Any

import orjson

from raxx_queue.db.reads import GET_CUSTOMER, LIST_CUSTOMERS
from tests.support.database import Conn

CUSTOMERS = 3000
PAGE = 50


async def seed(db: Conn) -> None:
    """Customers, each with a canceled and an active subscription, and a mirror row."""
    await db.execute(
        """
        INSERT INTO billing_customer (queue_customer_id, stripe_customer_id)
        SELECT 'cust_' || n, 'cus_' || n FROM generate_series(1, $1) AS n;
        INSERT INTO billing_subscription
               (stripe_subscription_id, stripe_customer_id, status, plan_tier,
                current_period_end)
        SELECT 'sub_' || n || '_' || k, 'cus_' || n,
               CASE k WHEN 1 THEN 'canceled' ELSE 'active' END, 'pro', now()
          FROM generate_series(1, $1) AS n, generate_series(1, 2) AS k;
        INSERT INTO billing_subscription_mirror (queue_customer_id)
        SELECT 'cust_' || n FROM generate_series(1, $1) AS n;
        ANALYZE billing_customer; ANALYZE billing_subscription;
        ANALYZE billing_subscription_mirror;
        """.replace("$1", str(CUSTOMERS))
    )


def subscription_rows_read(plan: dict[str, Any]) -> int:
    """Rows that scans of billing_subscription produced, over all their loops."""
    rows = 0
    if plan.get("Relation Name") == "billing_subscription":
        rows += plan["Actual Rows"] * plan["Actual Loops"]
    for child in plan.get("Plans", []):
        rows += subscription_rows_read(child)
    return rows


async def analyze(db: Conn, query: str, *args: object) -> dict[str, Any]:
    text = await db.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {query}", *args)
    plan: dict[str, Any] = orjson.loads(text)[0]["Plan"]
    return plan


async def test_one_customer_reads_only_its_subscriptions(db: Conn) -> None:
    await seed(db)
    row = await db.fetchrow(GET_CUSTOMER, "cust_1234")
    assert row is not None
    assert (row["status"], row["stripe_subscription_id"]) == ("active", "sub_1234_2")
    plan = await analyze(db, GET_CUSTOMER, "cust_1234")
    assert subscription_rows_read(plan) == 2  # its own two, of 6,000


async def test_a_page_of_customers_reads_only_that_page(db: Conn) -> None:
    await seed(db)
    rows = await db.fetch(LIST_CUSTOMERS, 0, None, None, PAGE)
    assert [r["queue_customer_id"] for r in rows] == [f"cust_{n}" for n in range(1, PAGE + 1)]
    assert {r["status"] for r in rows} == {"active"}
    plan = await analyze(db, LIST_CUSTOMERS, 0, None, None, PAGE)
    assert subscription_rows_read(plan) == 2 * PAGE
