"""Rows written straight into the database, for read tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.database import Conn

NOW = datetime.now(UTC).replace(microsecond=0)


async def customer(
    db: Conn,
    queue_customer_id: str,
    *,
    stripe_customer_id: str | None = None,
    email: str | None = None,
    name: str | None = None,
) -> None:
    await db.execute(
        "INSERT INTO billing_customer (queue_customer_id, stripe_customer_id, billing_email,"
        " billing_name) VALUES ($1, $2, $3, $4)",
        queue_customer_id,
        stripe_customer_id,
        email,
        name,
    )


async def subscription(
    db: Conn,
    stripe_subscription_id: str,
    stripe_customer_id: str,
    *,
    status: str = "active",
    plan_tier: str = "pro",
    price_id: str | None = None,
    grace_until: datetime | None = None,
    period_end: datetime | None = None,
) -> None:
    await db.execute(
        "INSERT INTO billing_subscription (stripe_subscription_id, stripe_customer_id, status,"
        " plan_tier, price_id, grace_until, current_period_end) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        stripe_subscription_id,
        stripe_customer_id,
        status,
        plan_tier,
        price_id,
        grace_until,
        period_end or NOW + timedelta(days=30),
    )


async def invoice(
    db: Conn, stripe_invoice_id: str, stripe_customer_id: str, created: datetime, **extra: Any
) -> None:
    await db.execute(
        "INSERT INTO billing_invoice (stripe_invoice_id, stripe_customer_id, status,"
        " amount_due, amount_paid, currency, stripe_created_at) VALUES ($1,$2,$3,$4,$5,$6,$7)",
        stripe_invoice_id,
        stripe_customer_id,
        extra.get("status", "paid"),
        extra.get("amount_due", 2000),
        extra.get("amount_paid", 2000),
        "usd",
        created,
    )
