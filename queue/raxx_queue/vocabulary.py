"""The words of billing every layer shares: plan tiers, statuses, ids, audit actors.

The database holds the same words (CHECK constraints, billing_tier_rank); the schema
and this module change together.
"""

from __future__ import annotations

from typing import Literal, get_args

PlanTier = Literal["free", "pro", "pro_plus"]
PaidTier = Literal["pro", "pro_plus"]
# free < pro < pro_plus: a subscription of several items grants its best tier, and a
# fall in rank is a downgrade
TIER_RANK: dict[str, int] = {tier: rank for rank, tier in enumerate(get_args(PlanTier))}

# A Stripe subscription's status, as Stripe names it.
StripeSubscriptionStatus = Literal[
    "incomplete",
    "incomplete_expired",
    "trialing",
    "active",
    "past_due",
    "canceled",
    "unpaid",
    "paused",
]
STRIPE_SUBSCRIPTION_STATUSES = frozenset(get_args(StripeSubscriptionStatus))
# A customer's subscription status in Queue's reads and mirror: Stripe's, or none.
SubscriptionStatus = Literal["none", StripeSubscriptionStatus]

# A customer's access under the policy (deploy/billing_access_policy.sql, the table
# billing_access_rule; docs/access-policy.md), and the reason when it is not plain.
Access = Literal["active", "trialing", "grace", "suspended", "ended", "none"]
ENTITLING_ACCESS = frozenset({"active", "trialing", "grace"})
AccessReason = Literal[
    "payment_failed",
    "unpaid",
    "paused",
    "collection_paused",
    "dispute",
    "canceled",
    "incomplete",
    "customer_deleted",
]

INVOICE_STATUSES = frozenset({"draft", "open", "paid", "uncollectible", "void"})

# The platform's id of a customer (SPEC §3).
QUEUE_CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"

# Who an audit row says acted: the calling service, Stripe, or Queue itself (its
# reconcile, its catch-up of missed events, its other jobs).
Actor = Literal["stripe", "raptor", "console", "reconcile", "system", "catchup"]

# How a Stripe event reached Queue (processed_stripe_events.source): a webhook
# delivery, `events replay`, reconcile's synthetic events, the catch-up worker, or a
# thin notification (the notification itself and the snapshot event it names).
EventSource = Literal["webhook", "replay", "reconcile", "catchup", "thin"]
