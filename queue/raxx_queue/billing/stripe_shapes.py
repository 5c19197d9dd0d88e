"""Reading Stripe objects in the pinned API's shape, with the older places as fallback."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from raxx_queue.db.subscriptions import SubscriptionRow

Obj = dict[str, Any]


def timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value is not None else None


def first_item(subscription: Obj) -> Obj:
    items = (subscription.get("items") or {}).get("data") or []
    return items[0] if items else {}


def subscription_row(subscription: Obj, price_tiers: dict[str, str]) -> SubscriptionRow:
    """The billing_subscription row of a subscription object."""
    item = first_item(subscription)
    price_id = (item.get("price") or {}).get("id")
    # periods moved to the items in 2025-03-31.basil
    start = item.get("current_period_start", subscription.get("current_period_start"))
    end = item.get("current_period_end", subscription.get("current_period_end"))
    created = timestamp(subscription["created"])
    assert created is not None
    return SubscriptionRow(
        stripe_subscription_id=subscription["id"],
        stripe_customer_id=_id_of(subscription["customer"]),
        status=subscription["status"],
        price_id=price_id,
        plan_tier=price_tiers.get(price_id or "", "free"),
        current_period_start=timestamp(start),
        current_period_end=timestamp(end),
        cancel_at_period_end=bool(subscription.get("cancel_at_period_end")),
        trial_end=timestamp(subscription.get("trial_end")),
        canceled_at=timestamp(subscription.get("canceled_at")),
        ended_at=timestamp(subscription.get("ended_at")),
        created=created,
    )


def client_secret_of(subscription: Obj) -> str | None:
    """The secret the client confirms the first payment (or card setup) with, if any."""
    invoice = subscription.get("latest_invoice")
    if isinstance(invoice, dict):
        secret = (invoice.get("confirmation_secret") or {}).get("client_secret")
        if secret:
            return str(secret)
        # before 2025-03-31.basil the invoice carried its payment intent
        intent = invoice.get("payment_intent")
        if isinstance(intent, dict) and intent.get("client_secret"):
            return str(intent["client_secret"])
    # nothing to pay now (a trial): the card is confirmed through the setup intent
    setup = subscription.get("pending_setup_intent")
    if isinstance(setup, dict) and setup.get("client_secret"):
        return str(setup["client_secret"])
    return None


def _id_of(value: Any) -> str:
    return str(value["id"] if isinstance(value, dict) else value)
