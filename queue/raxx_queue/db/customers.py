"""SQL of billing customers: their state for the write flows, the Stripe id, linking."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import asyncpg

from raxx_queue.db.pool import Connection

# The customer's Stripe link and the subscription that blocks a new one (SPEC §3: 409 when
# one is active, trialing or past_due), in one round trip.
CUSTOMER_STATE = """
SELECT c.stripe_customer_id,
       c.deleted_at IS NOT NULL AS deleted,
       (SELECT s.stripe_subscription_id
          FROM billing_subscription AS s
         WHERE s.stripe_customer_id = c.stripe_customer_id
           AND c.deleted_at IS NULL
           AND s.status IN ('active', 'trialing', 'past_due')
         ORDER BY s.stripe_created_at DESC NULLS LAST, s.stripe_subscription_id
         LIMIT 1) AS blocking_subscription_id
  FROM billing_customer AS c
 WHERE c.queue_customer_id = $1
"""

STRIPE_CUSTOMER_ID = "SELECT stripe_customer_id FROM billing_customer WHERE queue_customer_id = $1"

LINK_CUSTOMER = "SELECT created, linked FROM billing_link_customer($1, $2, $3, $4, 'request')"
LINK_CONFLICT_SQLSTATE = "QU010"


@dataclass(frozen=True)
class CustomerState:
    stripe_customer_id: str | None
    deleted: bool
    blocking_subscription_id: str | None

    @property
    def live_stripe_customer_id(self) -> str | None:
        """The Stripe customer to use, unless it was deleted."""
        return None if self.deleted else self.stripe_customer_id


@dataclass(frozen=True)
class CustomerLink:
    created: bool  # the queue customer had no row
    linked: bool  # its Stripe customer was set or changed


class LinkConflict(Exception):
    """The queue customer or the Stripe customer is already linked to another one."""


async def fetch_customer_state(conn: Connection, queue_customer_id: str) -> CustomerState | None:
    row = await conn.fetchrow(CUSTOMER_STATE, queue_customer_id)
    if row is None:
        return None
    return CustomerState(
        stripe_customer_id=row["stripe_customer_id"],
        deleted=row["deleted"],
        blocking_subscription_id=row["blocking_subscription_id"],
    )


async def fetch_stripe_customer_id(
    conn: Connection, queue_customer_id: str
) -> tuple[Literal[True], str | None] | tuple[Literal[False], None]:
    """(True, its Stripe customer id or None) for a known customer, (False, None) if not."""
    row = await conn.fetchrow(STRIPE_CUSTOMER_ID, queue_customer_id)
    if row is None:
        return False, None
    return True, row["stripe_customer_id"]


async def link_customer(
    conn: Connection,
    queue_customer_id: str,
    stripe_customer_id: str | None,
    *,
    email: str | None,
    name: str | None,
) -> CustomerLink:
    """Create or link as the platform asserts it (see billing_link_customer, 'request')."""
    try:
        row = await conn.fetchrow(LINK_CUSTOMER, queue_customer_id, stripe_customer_id, email, name)
    except asyncpg.PostgresError as error:
        if error.sqlstate == LINK_CONFLICT_SQLSTATE:
            raise LinkConflict(str(error)) from None
        raise
    assert row is not None
    return CustomerLink(created=row["created"], linked=row["linked"])
