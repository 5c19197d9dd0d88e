"""Stripe API objects built from the official fixtures, in the current API shape unless asked.

Current shape (API 2025-03-31.basil and later): a subscription's period dates live on
`items.data[]`, an invoice names its subscription at `parent.subscription_details.subscription`
and has no `paid` / `payment_intent` fields. `legacy_shape=True` gives the older places
(`subscription.current_period_end`, `invoice.subscription`, `invoice.paid`).
"""

from __future__ import annotations

import random
import secrets
import string
import time

from raxx_queue.simulator.fixtures import Json, fixture

MONTH_SECONDS = 30 * 86_400
DEFAULT_AMOUNT = 2000
_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, rng: random.Random | None = None, *, length: int = 24) -> str:
    """A Stripe-looking id: `cus_` + base62 characters."""
    if rng is None:
        return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))
    return prefix + "".join(rng.choice(_ALPHABET) for _ in range(length))


def _now(created: int | None) -> int:
    return int(time.time()) if created is None else created


def customer_obj(
    id: str,
    email: str | None,
    name: str | None,
    queue_customer_id: str | None,
    *,
    created: int | None = None,
    metadata: dict[str, str] | None = None,
    default_payment_method: str | None = None,
) -> Json:
    """A customer; `queue_customer_id` goes to `metadata` as Queue writes it."""
    customer = fixture("customer")
    linked = {"queue_customer_id": queue_customer_id} if queue_customer_id else {}
    customer.update(
        id=id,
        email=email,
        name=name,
        created=_now(created),
        discount=None,
        shipping=None,
        metadata={**linked, **(metadata or {})},
    )
    customer["invoice_settings"]["default_payment_method"] = default_payment_method
    return customer


def deleted_customer_obj(id: str) -> Json:
    """What Stripe returns for a deleted customer."""
    deleted = fixture("deleted_customer")
    deleted["id"] = id
    return deleted


def payment_method_obj(id: str, customer: str | None, *, created: int | None = None) -> Json:
    """A card payment method (Visa 4242), attached to `customer` when given."""
    method = fixture("payment_method")
    method.update(id=id, customer=customer, created=_now(created), metadata={})
    return method


def price_obj(price_id: str, *, unit_amount: int = DEFAULT_AMOUNT) -> Json:
    """A monthly recurring price."""
    price = fixture("price")
    price.update(
        id=price_id,
        unit_amount=unit_amount,
        unit_amount_decimal=str(unit_amount),
        transform_quantity=None,
    )
    return price


def plan_obj(price: Json) -> Json:
    """The legacy `plan` mirror of a price, as Stripe still embeds it on items."""
    plan: Json = fixture("subscription_item")["plan"]
    plan.update(
        id=price["id"],
        amount=price["unit_amount"],
        amount_decimal=price["unit_amount_decimal"],
        billing_scheme="per_unit",
        created=price["created"],
        currency=price["currency"],
        interval_count=1,
        livemode=False,
        metadata={},
        product=price["product"],
        transform_usage=None,
    )
    return plan


def subscription_item_obj(
    id: str,
    subscription: str,
    price_id: str,
    *,
    period_start: int,
    period_end: int,
    quantity: int = 1,
    legacy_shape: bool = False,
) -> Json:
    """One subscription item; period dates on the item unless `legacy_shape`."""
    item = fixture("subscription_item")
    price = price_obj(price_id)
    item.update(
        id=id,
        subscription=subscription,
        price=price,
        plan=plan_obj(price),
        quantity=quantity,
        created=period_start,
        billing_thresholds=None,
        current_period_start=period_start,
        current_period_end=period_end,
    )
    if legacy_shape:
        del item["current_period_start"], item["current_period_end"]
    return item


def subscription_obj(
    id: str,
    customer: str,
    status: str,
    price_id: str,
    current_period_end: int,
    cancel_at_period_end: bool = False,
    trial_end: int | None = None,
    legacy_shape: bool = False,
    *,
    current_period_start: int | None = None,
    created: int | None = None,
    item_id: str | None = None,
    latest_invoice: str | None = None,
    metadata: dict[str, str] | None = None,
    default_payment_method: str | None = None,
) -> Json:
    """A subscription with one item on `price_id`."""
    start = (
        current_period_end - MONTH_SECONDS if current_period_start is None else current_period_start
    )
    item = subscription_item_obj(
        item_id or new_id("si_"),
        id,
        price_id,
        period_start=start,
        period_end=current_period_end,
        legacy_shape=legacy_shape,
    )
    subscription = fixture("subscription")
    ended = current_period_end if status in ("canceled", "incomplete_expired") else None
    subscription.update(
        id=id,
        customer=customer,
        status=status,
        created=start if created is None else created,
        start_date=start if created is None else created,
        billing_cycle_anchor=start,
        billing_cycle_anchor_config=None,
        cancel_at_period_end=cancel_at_period_end,
        cancel_at=current_period_end if cancel_at_period_end else None,
        canceled_at=ended,
        ended_at=ended,
        trial_start=start if trial_end is not None else None,
        trial_end=trial_end,
        latest_invoice=latest_invoice,
        metadata=dict(metadata or {}),
        default_payment_method=default_payment_method,
        discounts=[],
        pause_collection=None,
        pending_update=None,
        pending_invoice_item_interval=None,
        next_pending_invoice_item_invoice=None,
        transfer_data=None,
        items=_list([item], f"/v1/subscription_items?subscription={id}"),
    )
    if legacy_shape:
        subscription.update(
            current_period_start=start,
            current_period_end=current_period_end,
            plan=item["plan"],
            quantity=item["quantity"],
        )
    return subscription


def _list(data: list[Json], url: str) -> Json:
    return {"object": "list", "data": data, "has_more": False, "url": url}


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
    when = _now(created)
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
        lines=_list(
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
        created=_now(created),
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


def checkout_session_obj(
    id: str,
    customer: str | None,
    subscription: str | None,
    client_reference_id: str | None,
    *,
    mode: str = "subscription",
    status: str = "complete",
    payment_status: str = "paid",
    customer_email: str | None = None,
    created: int | None = None,
    url: str | None = None,
    success_url: str | None = "https://example.com/success",
    cancel_url: str | None = "https://example.com/cancel",
    metadata: dict[str, str] | None = None,
) -> Json:
    """A Checkout Session; `url` is only set while the session is open."""
    when = _now(created)
    session = fixture("checkout.session")
    session.update(
        id=id,
        customer=customer,
        subscription=subscription,
        client_reference_id=client_reference_id,
        mode=mode,
        status=status,
        payment_status=payment_status,
        customer_email=customer_email,
        created=when,
        expires_at=when + 86_400,
        url=url,
        success_url=success_url,
        cancel_url=cancel_url,
        metadata=dict(metadata or {}),
        currency="usd",
        payment_intent=None,
        invoice=None,
        after_expiration=None,
        shipping_address_collection=None,
        shipping_cost=None,
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    )
    session["customer_details"]["email"] = customer_email
    return session


def portal_session_obj(
    id: str, customer: str, return_url: str | None, url: str, *, created: int | None = None
) -> Json:
    """A Customer Portal session."""
    session = fixture("billing_portal.session")
    session.update(
        id=id,
        customer=customer,
        return_url=return_url,
        url=url,
        created=_now(created),
        flow=None,
        livemode=False,
    )
    return session
