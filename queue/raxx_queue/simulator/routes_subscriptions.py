"""Subscription endpoints of the Stripe double (and deleting a customer, which ends them)."""

from __future__ import annotations

from typing import Any

from raxx_queue.simulator import objects, payment_objects
from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.state import (
    Call,
    StripeApiError,
    StripeState,
    created_matches,
    flag,
    live_customer,
    merge_metadata,
    newest_first,
    paginate,
    parameter_missing,
    resource_missing,
)

ENDED_STATUSES = ("canceled", "incomplete_expired")


def required(params: Json, name: str) -> Any:
    value = params.get(name)
    if not value:
        raise parameter_missing(name)
    return value


# --- subscriptions -----------------------------------------------------------------------


def create_subscription(state: StripeState, call: Call) -> Json:
    params = call.params
    customer = live_customer(state, required(params, "customer"), "customer")
    items: list[Json] = required(params, "items")
    now = state.now()
    trial_end = _trial_end(params, now)
    subscription = objects.subscription_obj(
        state.new_id("sub_"),
        customer["id"],
        _initial_status(params, customer, trial_end),
        item_price(items[0], 0),
        trial_end or now + objects.MONTH_SECONDS,
        cancel_at_period_end=flag(params.get("cancel_at_period_end")),
        trial_end=trial_end,
        current_period_start=now,
        created=now,
        item_id=state.new_id("si_", 14),
        metadata=merge_metadata({}, params.get("metadata")),
        default_payment_method=params.get("default_payment_method"),
    )
    first_item = subscription["items"]["data"][0]
    first_item["quantity"] = int(items[0].get("quantity", 1))
    for index, spec in enumerate(items[1:], start=1):
        subscription["items"]["data"].append(_new_item(state, subscription, spec, index))
    invoice = _first_invoice(state, subscription, customer)
    subscription["latest_invoice"] = invoice["id"]
    state.store(subscription)
    state.emit("customer.subscription.created", subscription)
    for event_type in _FIRST_INVOICE_EVENTS[invoice["status"]]:
        state.emit(event_type, invoice)
    return state.render(subscription, call.expand)


# what Stripe sends about a subscription's first invoice, by the status it starts in
_FIRST_INVOICE_EVENTS = {
    "open": ("invoice.created", "invoice.finalized"),
    "paid": ("invoice.created", "invoice.finalized", "invoice.paid", "invoice.payment_succeeded"),
}


def item_price(spec: Json, index: int) -> str:
    price: str | None = spec.get("price")
    if not price:
        raise parameter_missing(f"items[{index}][price]")
    return price


def _trial_end(params: Json, now: int) -> int | None:
    if params.get("trial_end") and params["trial_end"] != "now":
        return int(params["trial_end"])
    if params.get("trial_period_days"):
        return now + int(params["trial_period_days"]) * 86_400
    return None


def _initial_status(params: Json, customer: Json, trial_end: int | None) -> str:
    if trial_end is not None:
        return "trialing"
    if params.get("payment_behavior") == "default_incomplete":
        return "incomplete"
    if (
        params.get("default_payment_method")
        or customer["invoice_settings"]["default_payment_method"]
    ):
        return "active"
    raise StripeApiError(
        400,
        "invalid_request_error",
        "This customer has no attached payment source or default payment method. "
        "Please consider adding a default payment method.",
        code="resource_missing",
    )


def _new_item(state: StripeState, subscription: Json, spec: Json, index: int) -> Json:
    template = subscription["items"]["data"][0]
    start = template.get(
        "current_period_start", subscription.get("current_period_start", state.now())
    )
    end = template.get("current_period_end", subscription.get("current_period_end", state.now()))
    item = objects.subscription_item_obj(
        state.new_id("si_", 14),
        subscription["id"],
        item_price(spec, index),
        period_start=start,
        period_end=end,
        quantity=int(spec.get("quantity", 1)),
        legacy_shape="current_period_start" not in template,
    )
    return item


def _first_invoice(state: StripeState, subscription: Json, customer: Json) -> Json:
    """The invoice Stripe opens with a new subscription, its payment intent and includables."""
    now, status = state.now(), subscription["status"]
    paid = status in ("active", "trialing")
    first_item = subscription["items"]["data"][0]
    amount = (
        0 if status == "trialing" else first_item["price"]["unit_amount"] * first_item["quantity"]
    )
    invoice = payment_objects.invoice_obj(
        state.new_id("in_"),
        customer["id"],
        subscription["id"],
        "paid" if paid else "open",
        amount_due=amount,
        created=now,
        price_id=first_item["price"]["id"],
        billing_reason="subscription_create",
    )
    state.store(invoice)
    if amount:
        _attach_payment_intent(state, invoice, paid, subscription["default_payment_method"])
    return invoice


def _attach_payment_intent(
    state: StripeState, invoice: Json, paid: bool, method: str | None
) -> None:
    intent = payment_objects.payment_intent_obj(
        state.new_id("pi_"),
        invoice["amount_due"],
        invoice["customer"],
        "succeeded" if paid else "requires_payment_method",
        created=invoice["created"],
        client_secret=None,
        payment_method=method,
    )
    intent["client_secret"] = f"{intent['id']}_secret_{state.new_id('', 25)}"
    state.store(intent)
    payment = payment_objects.invoice_payment_obj(
        state.new_id("inpay_"),
        invoice["id"],
        intent["id"],
        invoice["amount_due"],
        "paid" if paid else "open",
        created=invoice["created"],
    )
    state.includable[invoice["id"]] = {
        "confirmation_secret": {"client_secret": intent["client_secret"], "type": "payment_intent"},
        # the pre-basil field; reachable only via expand=latest_invoice.payment_intent
        "payment_intent": intent["id"],
        "payments": {
            "object": "list",
            "data": [payment],
            "has_more": False,
            "url": f"/v1/invoice_payments?invoice={invoice['id']}",
        },
    }


def retrieve_subscription(state: StripeState, call: Call) -> Json:
    return state.render(state.get(call.arg()), call.expand)


def list_subscriptions(state: StripeState, call: Call) -> Json:
    params = call.params
    matching = [
        subscription
        for subscription in state.subscriptions.values()
        if params.get("customer") in (None, subscription["customer"])
        and _status_matches(subscription["status"], params.get("status"))
        and _has_price(subscription, params.get("price"))
        and created_matches(subscription["created"], params.get("created"))
    ]
    return state.render(paginate(newest_first(matching), params, "/v1/subscriptions"), call.expand)


def _status_matches(status: str, wanted: str | None) -> bool:
    if wanted is None:
        return status != "canceled"
    if wanted == "all":
        return True
    if wanted == "ended":
        return status in ENDED_STATUSES
    return status == wanted


def _has_price(subscription: Json, price: str | None) -> bool:
    return price is None or any(
        item["price"]["id"] == price for item in subscription["items"]["data"]
    )


def update_subscription(state: StripeState, call: Call) -> Json:
    subscription = state.get(call.arg())
    params = call.params
    if subscription["status"] == "canceled" and set(params) - {
        "metadata",
        "cancellation_details",
        "expand",
    }:
        raise StripeApiError(
            400,
            "invalid_request_error",
            "A canceled subscription can only update its cancellation_details and metadata.",
        )
    _apply_cancellation(subscription, params)
    for index, spec in enumerate(params.get("items") or []):
        _apply_item(state, subscription, spec, index)
    if "metadata" in params:
        subscription["metadata"] = merge_metadata(subscription["metadata"], params["metadata"])
    if "default_payment_method" in params:
        subscription["default_payment_method"] = params["default_payment_method"] or None
    if "pause_collection" in params:
        subscription["pause_collection"] = params["pause_collection"] or None
    if params.get("trial_end") == "now":
        subscription.update(trial_end=state.now(), status="active")
    state.emit("customer.subscription.updated", subscription)
    return state.render(subscription, call.expand)


def _apply_cancellation(subscription: Json, params: Json) -> None:
    if "cancel_at_period_end" in params:
        at_end = flag(params["cancel_at_period_end"])
        subscription["cancel_at_period_end"] = at_end
        subscription["cancel_at"] = _period_end(subscription) if at_end else None
    if "cancel_at" in params:
        subscription["cancel_at"] = int(params["cancel_at"]) if params["cancel_at"] else None


def _period_end(subscription: Json) -> int | None:
    item = subscription["items"]["data"][0]
    end: int | None = item.get("current_period_end", subscription.get("current_period_end"))
    return end


def _apply_item(state: StripeState, subscription: Json, spec: Json, index: int) -> None:
    items: list[Json] = subscription["items"]["data"]
    if not spec.get("id"):
        items.append(_new_item(state, subscription, spec, index))
        return
    item = next((item for item in items if item["id"] == spec["id"]), None)
    if item is None:
        raise resource_missing("subscription_item", spec["id"], f"items[{index}][id]")
    if flag(spec.get("deleted")):
        items.remove(item)
        return
    if spec.get("price"):
        item["price"] = objects.price_obj(spec["price"])
        item["plan"] = objects.plan_obj(item["price"])
    if "quantity" in spec:
        item["quantity"] = int(spec["quantity"])


def cancel_subscription(state: StripeState, call: Call) -> Json:
    subscription = state.get(call.arg())
    if subscription["status"] == "canceled":
        raise StripeApiError(400, "invalid_request_error", "This subscription is already canceled.")
    end_subscription(state, subscription)
    state.emit("customer.subscription.deleted", subscription)
    return state.render(subscription, call.expand)


def end_subscription(state: StripeState, subscription: Json) -> None:
    """Cancel now, as `DELETE /v1/subscriptions/{id}` or a deleted customer does."""
    now = state.now()
    subscription.update(status="canceled", canceled_at=now, ended_at=now)
    subscription["cancellation_details"] = {
        "comment": None,
        "feedback": None,
        "reason": "cancellation_requested",
    }


def delete_customer(state: StripeState, call: Call) -> Json:
    customer = live_customer(state, call.arg(), "id")
    for subscription in state.subscriptions.values():
        if subscription["customer"] == call.arg() and subscription["status"] not in ENDED_STATUSES:
            end_subscription(state, subscription)
            state.emit("customer.subscription.deleted", subscription)
    state.emit("customer.deleted", {**customer, "deleted": True})
    return state.store(objects.deleted_customer_obj(call.arg()))
