"""Read services for Console and Raptor: customers, subscriptions, invoices."""

from __future__ import annotations

from datetime import UTC, datetime

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
from raxx_queue.db.customers import fetch_stripe_customer_id
from raxx_queue.db.pool import Connection
from raxx_queue.errors import CustomerNotFound, ValidationFailed

BIGINT_MAX = 2**63 - 1


def _not_ours() -> ValidationFailed:
    return ValidationFailed("cursor: not a cursor this service issued")


def _customer_cursor(cursor: str) -> int:
    (after_id,) = decode_cursor(cursor, 1)
    # bool is an int to Python; the id is a bigint to Postgres
    if not isinstance(after_id, int) or isinstance(after_id, bool):
        raise _not_ours()
    if not 0 <= after_id <= BIGINT_MAX:
        raise _not_ours()
    return after_id


def _invoice_cursor(cursor: str) -> tuple[datetime, str]:
    created_text, invoice_id = decode_cursor(cursor, 2)
    if not isinstance(created_text, str) or not isinstance(invoice_id, str):
        raise _not_ours()
    if not invoice_id or len(invoice_id) > 255 or "\x00" in invoice_id:
        raise _not_ours()
    try:
        created = datetime.fromisoformat(created_text)
        if created.tzinfo is None:
            raise _not_ours()
        # the driver sends it in UTC: 9999-12-31T23:00-14:00 is past datetime's range
        return created.astimezone(UTC), invoice_id
    except (ValueError, OverflowError):
        raise _not_ours() from None


def _summary(row: asyncpg.Record) -> SubscriptionSummary:
    return SubscriptionSummary.model_validate(dict(row))


def _customer(row: asyncpg.Record) -> Customer:
    return Customer.model_validate({**row, "subscription": _summary(row)})


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
    after_id = _customer_cursor(cursor) if cursor else 0
    rows = await reads.fetch_customers(
        conn, after_id=after_id, status=status, plan_tier=plan_tier, limit=limit + 1
    )
    next_cursor = encode_cursor(rows[limit - 1]["id"]) if len(rows) > limit else None
    return CustomerPage(data=[_customer(r) for r in rows[:limit]], next_cursor=next_cursor)


async def list_invoices(
    conn: Connection, queue_customer_id: str, *, limit: int, cursor: str | None
) -> InvoicePage:
    exists, stripe_customer_id = await fetch_stripe_customer_id(conn, queue_customer_id)
    if not exists:
        raise CustomerNotFound()
    if stripe_customer_id is None:
        return InvoicePage(data=[], next_cursor=None)
    before = _invoice_cursor(cursor) if cursor else None
    rows = await reads.fetch_invoices(conn, stripe_customer_id, before=before, limit=limit + 1)
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(last["created"].isoformat(), last["stripe_invoice_id"])
    return InvoicePage(data=[Invoice(**dict(r)) for r in rows[:limit]], next_cursor=next_cursor)
