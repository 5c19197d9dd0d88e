"""Stripe's invoices, invoice lines, PaymentIntents and invoice payments, built from the
official fixtures, in the current API shape unless asked (see `objects`)."""

from __future__ import annotations

from raxx_queue.simulator.fixtures import Json, fixture
from raxx_queue.simulator.objects import (
    DEFAULT_AMOUNT,
    MONTH_SECONDS,
    list_obj,
    new_id,
    now_or,
    price_obj,
)


def invoice_obj(
    id: str,
    customer: str,
    subscription: str | None,
    status: str,
    paid: bool | None = None,
    legacy_shape: bool = False,
    *,
    amount_due: int = DEFAULT_AMOUNT,
    created: int | None = None,
    price_id: str | None = None,
    billing_reason: str = "subscription_cycle",
    attempt_count: int = 0,
    payment_intent: str | None = None,
) -> Json:
    """An invoice; `paid` defaults to `status == "paid"` (a field only in the legacy shape)."""
    when = now_or(created)
    is_paid = status == "paid" if paid is None else paid
    invoice = fixture("invoice")
    invoice.update(
        id=id,
        customer=customer,
        status=status,
        created=when,
        effective_at=None if status == "draft" else when,
        period_start=when,
        period_end=when,
        billing_reason=billing_reason,
        amount_due=amount_due,
        amount_paid=amount_due if is_paid else 0,
        amount_remaining=0 if is_paid else amount_due,
        amount_overpaid=0,
        subtotal=amount_due,
        subtotal_excluding_tax=amount_due,
        total=amount_due,
        total_excluding_tax=amount_due,
        attempt_count=attempt_count,
        attempted=attempt_count > 0 or is_paid,
        due_date=None,
        from_invoice=None,
        last_finalization_error=None,
        next_payment_attempt=None,
        webhooks_delivered_at=when,
        shipping_cost=None,
        status_transitions=_status_transitions(status, when, is_paid),
        lines=list_obj(
            [_invoice_line(id, subscription, price_id, amount_due, when, legacy_shape)],
            f"/v1/invoices/{id}/lines",
        ),
    )
    if legacy_shape:
        del invoice["parent"]
        invoice.update(subscription=subscription, paid=is_paid, payment_intent=payment_intent)
    else:
        del invoice["subscription"]
        invoice["parent"] = _invoice_parent(subscription)
    return invoice


def _status_transitions(status: str, when: int, is_paid: bool) -> Json:
    return {
        "finalized_at": None if status == "draft" else when,
        "marked_uncollectible_at": when if status == "uncollectible" else None,
        "paid_at": when if is_paid else None,
        "voided_at": when if status == "void" else None,
    }


def _invoice_parent(subscription: str | None) -> Json | None:
    if subscription is None:
        return None
    return {
        "type": "subscription_details",
        "quote_details": None,
        "subscription_details": {"metadata": {}, "subscription": subscription},
    }


def _invoice_line(
    invoice: str,
    subscription: str | None,
    price_id: str | None,
    amount: int,
    when: int,
    legacy_shape: bool,
) -> Json:
    line: Json = fixture("invoice")["lines"]["data"][0]
    line.update(
        id=new_id("il_"),
        invoice=invoice,
        amount=amount,
        subtotal=amount,
        description="1 x Queue subscription",
        period={"start": when, "end": when + MONTH_SECONDS},
        discountable=True,
    )
    if legacy_shape:
        del line["parent"], line["pricing"]
        line.update(
            subscription=subscription,
            type="subscription",
            price=price_obj(price_id) if price_id else None,
        )
        return line
    line["subscription"] = None
    line["pricing"] = {
        "type": "price_details",
        "price_details": {"price": price_id, "product": "prod_QXg1hqf4jFNsqG"},
        "unit_amount_decimal": str(amount),
    }
    line["parent"] = _line_parent(subscription)
    return line


def _line_parent(subscription: str | None) -> Json | None:
    if subscription is None:
        return None
    return {
        "type": "subscription_item_details",
        "invoice_item_details": None,
        "subscription_item_details": {
            "invoice_item": None,
            "proration": False,
            "proration_details": {"credited_items": None},
            "subscription": subscription,
            "subscription_item": None,
        },
    }


def payment_intent_obj(
    id: str,
    amount: int,
    customer: str | None,
    status: str = "requires_payment_method",
    *,
    created: int | None = None,
    client_secret: str | None = None,
    payment_method: str | None = None,
) -> Json:
    """A card payment intent whose `client_secret` the browser confirms."""
    intent = fixture("payment_intent")
    intent.update(
        id=id,
        amount=amount,
        amount_received=amount if status == "succeeded" else 0,
        customer=customer,
        status=status,
        created=now_or(created),
        client_secret=client_secret or f"{id}_secret_{new_id('')}",
        payment_method=payment_method,
        canceled_at=None,
        last_payment_error=None,
        next_action=None,
        processing=None,
        transfer_data=None,
        automatic_payment_methods=None,
    )
    return intent


def invoice_payment_obj(
    id: str, invoice: str, payment_intent: str, amount: int, status: str, *, created: int
) -> Json:
    """The link between an invoice and the payment intent that pays it (current API)."""
    payment = fixture("invoice_payment")
    payment.update(
        id=id,
        invoice=invoice,
        amount_requested=amount,
        amount_paid=amount if status == "paid" else None,
        created=created,
        currency="usd",
        livemode=False,
        status=status,
        payment={"type": "payment_intent", "payment_intent": payment_intent},
        status_transitions={"canceled_at": None, "paid_at": created if status == "paid" else None},
    )
    return payment
