"""Stripe event → the normalised change billing_apply_stripe_event applies.

Payloads arrive in the endpoint's API version: read the current shape first (period
dates on subscription items, invoice → subscription via parent.subscription_details)
and fall back to the older places (subscription.current_period_end, invoice.subscription).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from raxx_queue.vocabulary import INVOICE_STATUSES, STRIPE_SUBSCRIPTION_STATUSES, TIER_RANK
from raxx_queue.webhooks.errors import InvalidEvent

Json = dict[str, Any]


@dataclass(frozen=True)
class EventChange:
    """What one event means for Queue's tables."""

    family: str
    stripe_customer_id: str | None = None
    object_id: str | None = None
    change: Json = field(default_factory=dict)


def _id(value: Any) -> str | None:
    """An expandable field: an id string or an expanded object with an id."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("id"), str):
        return str(value["id"])
    return None


def _dig(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _metadata_queue_id(obj: Json) -> str | None:
    value = _dig(obj, "metadata", "queue_customer_id")
    return value if isinstance(value, str) else None


def _require(value: str | None, what: str) -> str:
    if not value:
        raise InvalidEvent(f"event object has no {what}")
    return value


def customer_change(event_type: str, obj: Json, _tiers: Mapping[str, str]) -> EventChange:
    customer_id = _require(_id(obj), "customer id")
    address = obj.get("address")
    return EventChange(
        family="customer",
        stripe_customer_id=customer_id,
        object_id=customer_id,
        change={
            "stripe_customer_id": customer_id,
            "queue_customer_id": _metadata_queue_id(obj),
            "email": _text(obj.get("email")),
            "name": _text(obj.get("name")),
            "address": address if isinstance(address, Mapping) else None,
            "deleted": bool(obj.get("deleted")) or event_type == "customer.deleted",
        },
    )


def _items(obj: Json) -> list[Json]:
    data = _dig(obj, "items", "data")
    return [item for item in data if isinstance(item, dict)] if isinstance(data, list) else []


def _is_epoch(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any) -> int | None:
    """An integer field (epoch seconds, amounts, counts); anything else is unknown."""
    return value if _is_epoch(value) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def subscription_fields(obj: Json, tiers: Mapping[str, str]) -> Json:
    """The columns of billing_subscription, from a subscription object of any API version."""
    items = _items(obj)
    prices = [_id(item.get("price")) for item in items]
    known = [(tiers.get(p or "", "free"), p) for p in prices]
    # several items: the subscription grants its best tier
    tier, price_id = max(known, key=lambda pair: TIER_RANK[pair[0]], default=("free", None))
    period_ends = [i["current_period_end"] for i in items if _is_epoch(i.get("current_period_end"))]
    period_starts = [
        i["current_period_start"] for i in items if _is_epoch(i.get("current_period_start"))
    ]
    return {
        "stripe_subscription_id": _require(_id(obj), "subscription id"),
        "stripe_customer_id": _require(_id(obj.get("customer")), "customer"),
        "queue_customer_id": _metadata_queue_id(obj),
        "status": _require(_text(obj.get("status")), "status"),
        "price_id": price_id,
        "plan_tier": tier,
        "current_period_start": max(period_starts, default=_int(obj.get("current_period_start"))),
        "current_period_end": max(period_ends, default=_int(obj.get("current_period_end"))),
        "cancel_at_period_end": bool(obj.get("cancel_at_period_end")),
        "trial_end": _int(obj.get("trial_end")),
        "canceled_at": _int(obj.get("canceled_at")),
        "ended_at": _int(obj.get("ended_at")),
        "stripe_created": _int(obj.get("created")),
        # pause_collection: {behavior, resumes_at} or null (every API version)
        "pause_behavior": _text(_dig(obj, "pause_collection", "behavior")),
        "pause_resumes_at": _int(_dig(obj, "pause_collection", "resumes_at")),
    }


def subscription_change(_event_type: str, obj: Json, tiers: Mapping[str, str]) -> EventChange:
    fields = subscription_fields(obj, tiers)
    if fields["status"] not in STRIPE_SUBSCRIPTION_STATUSES:
        raise InvalidEvent("unknown subscription status")
    return EventChange(
        family="subscription",
        stripe_customer_id=fields["stripe_customer_id"],
        object_id=fields["stripe_subscription_id"],
        change=fields,
    )


INVOICE_EFFECTS = {
    "invoice.created": "upsert",
    "invoice.finalized": "upsert",
    "invoice.updated": "upsert",
    "invoice.voided": "upsert",
    "invoice.marked_uncollectible": "upsert",
    "invoice.paid": "paid",
    "invoice.payment_succeeded": "paid",
    "invoice.payment_failed": "failed",
}


# funds_withdrawn / funds_reinstated carry no status the others do not
DISPUTE_EVENTS = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed")


def invoice_subscription_id(obj: Json) -> str | None:
    current = _id(_dig(obj, "parent", "subscription_details", "subscription"))
    return current or _id(obj.get("subscription"))


def invoice_payment_refs(obj: Json) -> list[str]:
    """The charge and PaymentIntent ids an invoice was paid with: top-level before
    2025-03-31.basil, under payments.data[].payment since (when included)."""
    refs = [_id(obj.get("charge")), _id(obj.get("payment_intent"))]
    payments = _dig(obj, "payments", "data")
    for payment in payments if isinstance(payments, list) else []:
        refs += [_id(_dig(payment, "payment", key)) for key in ("charge", "payment_intent")]
    return sorted({ref for ref in refs if ref})


def invoice_change(event_type: str, obj: Json, _tiers: Mapping[str, str]) -> EventChange:
    customer_id = _require(_id(obj.get("customer")), "customer")
    invoice_id = _id(obj)
    status = _text(obj.get("status"))
    if invoice_id is None:  # invoice.upcoming previews have no id: record only
        return EventChange(family="record", stripe_customer_id=customer_id, change={})
    return EventChange(
        family="invoice",
        stripe_customer_id=customer_id,
        object_id=invoice_id,
        change={
            "effect": INVOICE_EFFECTS.get(event_type, "upsert"),
            "stripe_invoice_id": invoice_id,
            "stripe_customer_id": customer_id,
            "stripe_subscription_id": invoice_subscription_id(obj),
            "status": status if status in INVOICE_STATUSES else None,
            "number": _text(obj.get("number")),
            "currency": _text(obj.get("currency")),
            "amount_due": _int(obj.get("amount_due")),
            "amount_paid": _int(obj.get("amount_paid")),
            "amount_remaining": _int(obj.get("amount_remaining")),
            "attempt_count": _int(obj.get("attempt_count")),
            "billing_reason": _text(obj.get("billing_reason")),
            "hosted_invoice_url": _text(obj.get("hosted_invoice_url")),
            "period_start": _int(obj.get("period_start")),
            "period_end": _int(obj.get("period_end")),
            "paid_at": _int(_dig(obj, "status_transitions", "paid_at")),
            "stripe_created": _int(obj.get("created")),
            "payment_refs": invoice_payment_refs(obj),
        },
    )


def dispute_change(event_type: str, obj: Json, _tiers: Mapping[str, str]) -> EventChange:
    """A dispute names its charge (and PaymentIntent), not its customer: the customer
    comes from an expanded charge, or from the invoices that named the payment (SQL)."""
    dispute_id = _require(_id(obj), "dispute id")
    charge, intent = obj.get("charge"), obj.get("payment_intent")
    customer = (
        _id(obj.get("customer")) or _id(_dig(charge, "customer")) or _id(_dig(intent, "customer"))
    )
    return EventChange(
        family="dispute",
        stripe_customer_id=customer,
        object_id=dispute_id,
        change={
            "stripe_dispute_id": dispute_id,
            "charge_id": _id(charge),
            "payment_intent_id": _id(intent),
            "status": _require(_text(obj.get("status")), "status"),
            "reason": _text(obj.get("reason")),
            "amount": _int(obj.get("amount")),
            "currency": _text(obj.get("currency")),
            "closed": event_type == "charge.dispute.closed",
            "stripe_created": _int(obj.get("created")),
        },
    )


def invoice_payment_change(_event_type: str, obj: Json, _tiers: Mapping[str, str]) -> EventChange:
    """invoice_payment.paid (2025-03-31.basil on): which payment paid which invoice, so a
    later dispute on the payment finds its customer."""
    refs = {_id(_dig(obj, "payment", key)) for key in ("charge", "payment_intent")}
    return EventChange(
        family="payment",
        stripe_customer_id=_id(obj.get("customer")),
        object_id=_id(obj),
        change={
            "stripe_invoice_id": _id(obj.get("invoice")),
            "payment_refs": sorted(ref for ref in refs if ref),
        },
    )


def checkout_change(event_type: str, obj: Json, tiers: Mapping[str, str]) -> EventChange:
    """Links the Checkout customer; a subscription the session carries expanded is
    stored too (Stripe's events carry its id: its own events store it)."""
    customer_id = _id(obj.get("customer"))
    reference = obj.get("client_reference_id")
    subscription = obj.get("subscription")
    change: Json = {
        "queue_customer_id": reference if isinstance(reference, str) else None,
        "stripe_subscription_id": _id(subscription),
        "mode": obj.get("mode"),
    }
    if isinstance(subscription, dict):
        change["subscription"] = subscription_change(event_type, subscription, tiers).change
    return EventChange(
        family="checkout" if customer_id else "record",
        stripe_customer_id=customer_id,
        object_id=_id(obj),
        change=change,
    )


def record_change(_event_type: str, obj: Json, _tiers: Mapping[str, str]) -> EventChange:
    """Events that are recorded and audited but change no state."""
    customer = _id(obj.get("customer")) if obj.get("object") != "customer" else _id(obj)
    return EventChange(
        family="record",
        stripe_customer_id=customer,
        object_id=_id(obj),
        change={"object": obj.get("object")},
    )


Builder = Callable[[str, Json, Mapping[str, str]], EventChange]

EVENT_BUILDERS: dict[str, Builder] = {
    "customer.created": customer_change,
    "customer.updated": customer_change,
    "customer.deleted": customer_change,
    "customer.subscription.created": subscription_change,
    "customer.subscription.updated": subscription_change,
    "customer.subscription.deleted": subscription_change,
    "customer.subscription.paused": subscription_change,
    "customer.subscription.resumed": subscription_change,
    "customer.subscription.trial_will_end": record_change,
    "invoice.upcoming": record_change,
    "invoice.payment_action_required": record_change,
    "checkout.session.completed": checkout_change,
    **{event_type: dispute_change for event_type in DISPUTE_EVENTS},
    "invoice_payment.paid": invoice_payment_change,
    **{event_type: invoice_change for event_type in INVOICE_EFFECTS},
}


def build_change(event_type: str, obj: Json, tiers: Mapping[str, str]) -> EventChange:
    builder = EVENT_BUILDERS.get(event_type)
    if builder is None:
        return EventChange(family="ignored", object_id=_id(obj))
    return builder(event_type, obj, tiers)
