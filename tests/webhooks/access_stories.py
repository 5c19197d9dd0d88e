"""Stories for the access policy's property tests: operations drawn by hypothesis, turned
into the events of one customer, and the facts an invariant is judged against."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from tests.support.database import Conn
from tests.support.webhooks import T0, customer_event, invoice_event, subscription_event
from tests.webhooks.access_steps import dispute_event, with_pause

Op = tuple[Any, ...]
STATUSES = (
    "active",
    "trialing",
    "past_due",
    "unpaid",
    "paused",
    "canceled",
    "incomplete",
    "incomplete_expired",
)
PAUSES = (None, None, "void", "keep_as_draft", "mark_uncollectible")
DISPUTE_STATUSES = ("warning_needs_response", "needs_response", "under_review", "won", "lost")

_status = st.tuples(st.just("status"), st.sampled_from(STATUSES), st.sampled_from(PAUSES))
operations = st.one_of(
    # deletion is final: drawn rarely, so that stories go on after most other steps
    st.sampled_from(
        ["status", "status", "status", "fail", "pay", "dispute", "time"] * 3 + ["del"]
    ).flatmap(
        lambda kind: {
            "status": _status,
            "fail": st.tuples(st.just("fail"), st.integers(min_value=1, max_value=3)),
            "pay": st.just(("pay",)),
            "dispute": st.tuples(
                st.just("dispute"), st.sampled_from(DISPUTE_STATUSES), st.booleans()
            ),
            "time": st.just(("time passes",)),
            "del": st.just(("customer deleted",)),
        }[kind]
    )
)
# every story starts paid up, so a dispute on its charge has a customer to find
START: list[Op] = [("status", "active", None), ("pay",)]
stories = st.lists(operations, min_size=1, max_size=10).map(lambda ops: START + ops)
_tags = itertools.count()


@dataclass(frozen=True)
class Leg:
    """One customer's copy of the story, with its own ids."""

    tag: str

    @staticmethod
    def new(path: str) -> Leg:
        return Leg(f"{path}{next(_tags)}")

    def id(self, prefix: str) -> str:
        return f"{prefix}_{self.tag}"

    def events(self, op: Op, step: int) -> list[dict[str, Any]]:
        """The events of one operation (none for time passing)."""
        created = T0 + 10 * step
        ids = {"customer": self.id("cus"), "queue_customer_id": self.id("cust")}
        kind = op[0]
        if kind == "status":
            event = subscription_event(
                "customer.subscription.updated",
                sub=self.id("sub"),
                status=op[1],
                created=created,
                event_id=f"evt_{self.tag}_{step}",
                **ids,
            )
            return [with_pause(event, op[2])]
        if kind in ("fail", "pay"):
            failed = kind == "fail"
            event = invoice_event(
                "invoice.payment_failed" if failed else "invoice.paid",
                invoice=f"in_{self.tag}_{step}",
                customer=self.id("cus"),
                sub=self.id("sub"),
                status="open" if failed else "paid",
                created=created,
                attempt_count=op[1] if failed else 1,
            )
            if not failed:
                event["data"]["object"]["charge"] = self.id("ch")
            return [event]
        if kind == "dispute":
            event_type = "charge.dispute.closed" if op[2] else "charge.dispute.updated"
            return [
                dispute_event(
                    event_type,
                    status=op[1],
                    created=created,
                    dispute=self.id("dp"),
                    charge=self.id("ch"),
                )
            ]
        if kind == "customer deleted":
            return [customer_event("customer.deleted", created=created, **ids)]
        return []


async def time_passes(db: Conn, legs: list[Leg]) -> None:
    """Every grace window and paid period still running ends now (no event says so)."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    subs = [leg.id("sub") for leg in legs]
    await db.execute(
        "UPDATE billing_subscription"
        " SET grace_until = CASE WHEN grace_until > $1 THEN $1 ELSE grace_until END,"
        " pause_paid_through = CASE WHEN pause_paid_through > $1 THEN $1"
        " ELSE pause_paid_through END"
        " WHERE stripe_subscription_id = ANY($2::text[])",
        past,
        subs,
    )
    await db.execute(
        "UPDATE billing_subscription_mirror SET access_due_at = $1"
        " WHERE access_due_at IS NOT NULL AND queue_customer_id = ANY($2::text[])",
        past,
        [leg.id("cust") for leg in legs],
    )


BASIS = """
SELECT s.status, s.grace_until, s.pause_behavior, s.pause_paid_through,
       s.payment_failure_count,
       c.deleted_at IS NOT NULL AS deleted,
       EXISTS (SELECT 1 FROM billing_dispute AS d
                WHERE d.stripe_customer_id = s.stripe_customer_id AND d.suspends_access
                  AND d.status NOT IN ('won', 'warning_closed', 'prevented')) AS disputed
  FROM billing_subscription AS s
  LEFT JOIN billing_customer AS c ON c.stripe_customer_id = s.stripe_customer_id
 WHERE s.stripe_subscription_id = $1
"""

MIRROR = """
SELECT plan_tier, status, current_period_end, grace_until, entitled, access, access_reason,
       access_rule, feature_locked_at IS NOT NULL AS locked, version
  FROM billing_subscription_mirror WHERE queue_customer_id = $1
"""


async def basis(db: Conn, leg: Leg) -> dict[str, Any]:
    """The raw facts of a customer, read from the tables, not from the policy's view."""
    row = await db.fetchrow(BASIS, leg.id("sub"))
    assert row is not None
    return dict(row)


async def mirror_row(db: Conn, leg: Leg) -> dict[str, Any]:
    row = await db.fetchrow(MIRROR, leg.id("cust"))
    assert row is not None
    return dict(row)
