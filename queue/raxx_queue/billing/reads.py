"""Read services for Console and Raptor: customers, subscriptions, invoices."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from raxx_queue.billing.cursor import decode_cursor, encode_cursor
from raxx_queue.billing.schemas import (
    Customer,
    CustomerPage,
    Invoice,
    InvoicePage,
    SubscriptionSummary,
)
from raxx_queue.db import reads
from raxx_queue.db.pool import Connection
from raxx_queue.errors import CustomerNotFound, ValidationFailed


def _summary(row: asyncpg.Record) -> SubscriptionSummary:
    entitled = bool(row["entitled"])
    return SubscriptionSummary(
        queue_customer_id=row["queue_customer_id"],
        stripe_subscription_id=row["stripe_subscription_id"],
        plan_tier=row["subscribed_tier"] if entitled else "free",
        subscribed_tier=row["subscribed_tier"],
        status=row["status"],
        current_period_end=row["current_period_end"],
        cancel_at_period_end=row["cancel_at_period_end"],
        trial_end=row["trial_end"],
        grace_until=row["grace_until"],
        entitled=entitled,
        feature_locked_at=row["feature_locked_at"],
    )


def _customer(row: asyncpg.Record) -> Customer:
    return Customer(
        queue_customer_id=row["queue_customer_id"],
        stripe_customer_id=row["stripe_customer_id"],
        billing_email=row["billing_email"],
        billing_name=row["billing_name"],
        deleted=row["deleted"],
        created_at=row["created_at"],
        subscription=_summary(row),
    )


async def get_customer(conn: Connection, queue_customer_id: str) -> Customer:
    row = await reads.fetch_customer(conn, queue_customer_id)
    if row is None:
        raise CustomerNotFound()
    return _customer(row)


async def get_subscription(conn: Connection, queue_customer_id: str) -> SubscriptionSummary:
    row = await reads.fetch_customer(conn, queue_customer_id)
    if row is None:
        raise CustomerNotFound()
    return _summary(row)


async def list_customers(
    conn: Connection, *, limit: int, cursor: str | None, status: str | None, plan_tier: str | None
) -> CustomerPage:
    after_id = 0
    if cursor:
        (after_id,) = decode_cursor(cursor, 1)
        if not isinstance(after_id, int):
            raise ValidationFailed("cursor: not a cursor this service issued")
    rows = await reads.fetch_customers(
        conn, after_id=after_id, status=status, plan_tier=plan_tier, limit=limit + 1
    )
    next_cursor = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
    return CustomerPage(data=[_customer(r) for r in rows[:limit]], next_cursor=next_cursor)


async def list_invoices(
    conn: Connection, queue_customer_id: str, *, limit: int, cursor: str | None
) -> InvoicePage:
    exists, stripe_customer_id = await reads.fetch_stripe_customer_id(conn, queue_customer_id)
    if not exists:
        raise CustomerNotFound()
    if stripe_customer_id is None:
        return InvoicePage(data=[], next_cursor=None)
    before = None
    if cursor:
        created_text, invoice_id = decode_cursor(cursor, 2)
        try:
            before = (datetime.fromisoformat(str(created_text)), str(invoice_id))
        except ValueError:
            raise ValidationFailed("cursor: not a cursor this service issued") from None
    rows = await reads.fetch_invoices(conn, stripe_customer_id, before=before, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["created"].isoformat(), last["stripe_invoice_id"])
    return InvoicePage(data=[Invoice(**dict(r)) for r in rows[:limit]], next_cursor=next_cursor)
