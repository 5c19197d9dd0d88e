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


def now_or(created: int | None) -> int:
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
        created=now_or(created),
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
    method.update(id=id, customer=customer, created=now_or(created), metadata={})
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
        items=list_obj([item], f"/v1/subscription_items?subscription={id}"),
    )
    if legacy_shape:
        subscription.update(
            current_period_start=start,
            current_period_end=current_period_end,
            plan=item["plan"],
            quantity=item["quantity"],
        )
    return subscription


def list_obj(data: list[Json], url: str) -> Json:
    return {"object": "list", "data": data, "has_more": False, "url": url}


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
    when = now_or(created)
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
        created=now_or(created),
        flow=None,
        livemode=False,
    )
    return session
