"""SQL of erasure: the customer to erase and billing_erase_customer (its one statement)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from raxx_queue.db.pool import Connection

ERASURE_TARGET = "SELECT stripe_customer_id FROM billing_customer WHERE queue_customer_id = $1"
ERASE = """
SELECT found, stripe_customer_id, erased_at, already_erased, erased
  FROM billing_erase_customer($1, $2)
"""
STRIPE_DELETED = """
SELECT deleted_at IS NOT NULL FROM billing_customer WHERE stripe_customer_id = $1
"""
LINK_CHANGED_SQLSTATE = "QU020"
# The statement reads every stored payload not yet stripped by retention (about 55 µs
# each in bench/erasure.py): more than the pool's 30 s on a very large ledger.
ERASE_TIMEOUT_SECONDS = 600.0


@dataclass(frozen=True)
class ErasedRows:
    stripe_customer_id: str | None
    erased_at: datetime
    already_erased: bool
    # category → count, PII-free (see billing_erase_customer)
    erased: dict[str, Any]


class StripeLinkChanged(Exception):
    """The customer was linked to another Stripe customer since its lock was taken."""


async def fetch_erasure_target(conn: Connection, queue_customer_id: str) -> tuple[bool, str | None]:
    """(exists, its Stripe customer id) of a queue customer."""
    row = await conn.fetchrow(ERASURE_TARGET, queue_customer_id)
    if row is None:
        return False, None
    return True, row["stripe_customer_id"]


async def erase_rows(
    conn: Connection, queue_customer_id: str, locked_stripe_id: str | None
) -> ErasedRows | None:
    """Anonymise the customer's rows (the caller holds its lock); None when unknown."""
    try:
        row = await conn.fetchrow(
            ERASE, queue_customer_id, locked_stripe_id, timeout=ERASE_TIMEOUT_SECONDS
        )
    except asyncpg.PostgresError as error:
        if error.sqlstate == LINK_CHANGED_SQLSTATE:
            raise StripeLinkChanged() from None
        raise
    if row is None or not row["found"]:
        return None
    return ErasedRows(
        stripe_customer_id=row["stripe_customer_id"],
        erased_at=row["erased_at"],
        already_erased=row["already_erased"],
        erased=row["erased"],
    )


async def stripe_customer_deleted(conn: Connection, stripe_customer_id: str) -> bool:
    """Whether Stripe's events said the Stripe customer was deleted."""
    return bool(await conn.fetchval(STRIPE_DELETED, stripe_customer_id))
