"""Response and request shapes of the billing API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from raxx_queue.vocabulary import Access, AccessReason, PlanTier, SubscriptionStatus


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True, frozen=True)


class SubscriptionSummary(Schema):
    """The customer's current subscription, as the paywall and Console see it."""

    queue_customer_id: str
    stripe_subscription_id: str | None
    # the tier the customer may use now: free unless entitled
    plan_tier: PlanTier
    # the tier of the subscription's price, whatever its status
    subscribed_tier: PlanTier
    status: SubscriptionStatus
    current_period_end: datetime | None
    cancel_at_period_end: bool
    trial_end: datetime | None
    grace_until: datetime | None
    # entitled is exactly access in (active, trialing, grace); see docs/access-policy.md
    entitled: bool
    access: Access
    access_reason: AccessReason | None
    # the policy rule that decided access, and when the mirror last saw access change
    access_rule: str
    access_changed_at: datetime | None
    feature_locked_at: datetime | None


class CustomerRecord(Schema):
    """A customer without personal data: what a caller that may not see it gets."""

    queue_customer_id: str
    stripe_customer_id: str | None
    deleted: bool
    created_at: datetime
    subscription: SubscriptionSummary


class Customer(CustomerRecord):
    """A customer with its personal fields (which callers see them: api/deps.py)."""

    billing_email: str | None
    billing_name: str | None


class CustomerPage(Schema):
    # Customer first: a record with the personal fields validates as one
    data: list[Customer | CustomerRecord]
    next_cursor: str | None


class Invoice(Schema):
    stripe_invoice_id: str
    stripe_subscription_id: str | None
    status: str | None
    number: str | None
    currency: str | None
    amount_due: int | None
    amount_paid: int | None
    amount_remaining: int | None
    hosted_invoice_url: str | None
    period_start: datetime | None
    period_end: datetime | None
    paid_at: datetime | None
    created: datetime


class InvoicePage(Schema):
    data: list[Invoice]
    next_cursor: str | None
