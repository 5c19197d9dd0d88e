"""What happens at Stripe on its own: payments, renewals, dunning, trial ends, cancellations.

These run on the simulator's account (under the double's lock) when time moves on
(`advance`) or when a scenario asks (`pay`, `fail_payment`, `cancel`), and emit the
events Stripe would send. Dunning follows a fixed schedule: a failed renewal is retried
RETRY_AFTER_DAYS after its first attempt, and when the last retry fails the
subscription becomes `unpaid` (Stripe's "mark the subscription unpaid" setting).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Literal

from raxx_queue.simulator import objects, payment_objects
from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.state import StripeApiError, StripeState, resource_missing

DAY = 86_400
RETRY_AFTER_DAYS = (3, 5, 7)
LIVE_STATUSES = frozenset({"trialing", "active", "past_due", "unpaid", "incomplete"})
UNPAID_STATUSES = frozenset({"incomplete", "past_due", "unpaid"})
Outcome = Literal["card", "succeed", "fail"]


def customer_of(state: StripeState, queue_customer_id: str) -> Json:
    """The live Stripe customer whose metadata names this queue customer."""
    for customer in reversed(list(state.customers.values())):
        metadata = customer.get("metadata") or {}
        if not customer.get("deleted") and metadata.get("queue_customer_id") == queue_customer_id:
            return customer
    raise resource_missing("customer", queue_customer_id, "queue_customer_id")


def live_subscription(state: StripeState, customer_id: str) -> Json:
    """The customer's newest subscription that has not ended."""
    for subscription in reversed(list(state.subscriptions.values())):
        if subscription["customer"] == customer_id and subscription["status"] in LIVE_STATUSES:
            return subscription
    raise StripeApiError(400, "invalid_request_error", "The customer has no live subscription.")


def _set_status(state: StripeState, subscription: Json, status: str) -> None:
    if subscription["status"] != status:
        previous = {"status": subscription["status"]}
        subscription["status"] = status
        state.emit("customer.subscription.updated", subscription, previous)


def _retry_at(invoice: Json, now: int) -> int | None:
    """When Stripe retries a failed invoice next, or None after its last retry."""
    retries = len(RETRY_AFTER_DAYS)
    if invoice["attempt_count"] > retries:
        return None
    first = invoice["status_transitions"]["finalized_at"] or now
    return int(first) + RETRY_AFTER_DAYS[invoice["attempt_count"] - 1] * DAY


def charge(state: StripeState, invoice: Json, outcome: Outcome = "card") -> bool:
    """Attempt the invoice's payment: as its customer's card behaves, or as told."""
    customer = state.get(invoice["customer"])
    method = customer["invoice_settings"]["default_payment_method"]
    succeeds = {
        "card": method is not None and state.card_behaviour.get(method) != "fails",
        "succeed": True,
        "fail": False,
    }[outcome]
    now = state.now()
    invoice.update(attempt_count=invoice["attempt_count"] + 1, attempted=True)
    subscription = state.find(_subscription_id(invoice) or "")
    if succeeds:
        invoice.update(
            status="paid",
            amount_paid=invoice["amount_due"],
            amount_remaining=0,
            next_payment_attempt=None,
        )
        invoice["status_transitions"]["paid_at"] = now
        state.emit("invoice.paid", invoice)
        state.emit("invoice.payment_succeeded", invoice)
        if subscription is not None and subscription["status"] in (
            "incomplete",
            "past_due",
            "unpaid",
        ):
            _set_status(state, subscription, "active")
        return True
    invoice["next_payment_attempt"] = _retry_at(invoice, now)
    state.emit("invoice.payment_failed", invoice)
    if subscription is not None:
        if subscription["status"] in ("active", "trialing"):
            _set_status(state, subscription, "past_due")
        if invoice["next_payment_attempt"] is None and subscription["status"] == "past_due":
            _set_status(state, subscription, "unpaid")
    return False


def _subscription_id(invoice: Json) -> str | None:
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    found: str | None = details.get("subscription") or invoice.get("subscription")
    return found


def renewal_invoice(state: StripeState, subscription: Json) -> Json:
    """The invoice of the subscription's current period, open (or draft while paused)."""
    item = subscription["items"]["data"][0]
    paused = subscription.get("pause_collection")
    invoice = payment_objects.invoice_obj(
        state.new_id("in_"),
        subscription["customer"],
        subscription["id"],
        "draft" if paused else "open",
        amount_due=sum(
            i["price"]["unit_amount"] * i["quantity"] for i in subscription["items"]["data"]
        ),
        created=state.now(),
        price_id=item["price"]["id"],
        billing_reason="subscription_cycle",
    )
    state.store(invoice)
    subscription["latest_invoice"] = invoice["id"]
    state.emit("invoice.created", invoice)
    if not paused:
        state.emit("invoice.finalized", invoice)
    return invoice


def _period_end(subscription: Json) -> int:
    return max(int(item["current_period_end"]) for item in subscription["items"]["data"])


def _renew(state: StripeState, subscription: Json) -> None:
    """Start the next period and bill it (or not, while collection is paused)."""
    previous = {"items": copy.deepcopy(subscription["items"])}
    for item in subscription["items"]["data"]:
        start = int(item["current_period_end"])
        item.update(current_period_start=start, current_period_end=start + objects.MONTH_SECONDS)
    state.emit("customer.subscription.updated", subscription, previous)
    invoice = renewal_invoice(state, subscription)
    if invoice["status"] == "open":
        charge(state, invoice)


def _end(state: StripeState, subscription: Json) -> None:
    now = state.now()
    subscription.update(status="canceled", canceled_at=now, ended_at=now)
    state.emit("customer.subscription.deleted", subscription)


def _due(state: StripeState) -> Iterator[tuple[int, str, Json]]:
    """(when, what, object) of everything that falls due up to the account's now."""
    now = state.now()
    for subscription in state.subscriptions.values():
        status = subscription["status"]
        if (
            status == "trialing"
            and subscription.get("trial_end")
            and subscription["trial_end"] <= now
        ):
            yield int(subscription["trial_end"]), "trial_end", subscription
        elif status in ("active", "past_due") and _period_end(subscription) <= now:
            what = "end" if subscription.get("cancel_at_period_end") else "renew"
            yield _period_end(subscription), what, subscription
    for invoice in state.invoices.values():
        retry = invoice.get("next_payment_attempt")
        if invoice["status"] == "open" and retry is not None and retry <= now:
            yield int(retry), "retry", invoice


def run_due(state: StripeState) -> None:
    """Everything that falls due by now, oldest first, until nothing is left."""
    while True:
        due = sorted(_due(state), key=lambda entry: (entry[0], entry[1]))
        if not due:
            return
        _, what, obj = due[0]
        if what == "trial_end":
            _set_status(state, obj, "active")
            _renew(state, obj)
        elif what == "renew":
            _renew(state, obj)
        elif what == "end":
            _end(state, obj)
        else:
            charge(state, obj)


# --- scenarios ---------------------------------------------------------------------------


def confirm_first_payment(state: StripeState, subscription_id: str) -> None:
    """What the customer's browser does with the subscribe answer's client secret."""
    subscription = state.get(subscription_id)
    invoice = state.find(subscription.get("latest_invoice") or "")
    if (
        subscription["status"] == "incomplete"
        and invoice is not None
        and invoice["status"] == "open"
    ):
        charge(state, invoice)


def pay(state: StripeState, queue_customer_id: str) -> None:
    """The customer pays what is open with a card that works (and makes it the default)."""
    customer = customer_of(state, queue_customer_id)
    method = customer["invoice_settings"]["default_payment_method"]
    if method is not None:
        state.card_behaviour.pop(method, None)
    open_invoices = [
        invoice
        for invoice in state.invoices.values()
        if invoice["customer"] == customer["id"] and invoice["status"] == "open"
    ]
    if not open_invoices:
        raise StripeApiError(400, "invalid_request_error", "The customer has nothing to pay.")
    for invoice in open_invoices:
        charge(state, invoice, "succeed")


def fail_payment(state: StripeState, queue_customer_id: str) -> None:
    """The customer's card starts to decline (expired, no funds), and the subscription
    bills now: its open invoice's next attempt, or a new invoice for the current period.
    Stripe's retries will fail too, until the customer pays (`pay`)."""
    customer = customer_of(state, queue_customer_id)
    method = customer["invoice_settings"]["default_payment_method"]
    if method is not None:
        state.card_behaviour[method] = "fails"
    subscription = live_subscription(state, customer["id"])
    latest = state.find(subscription.get("latest_invoice") or "")
    invoice = latest if latest is not None and latest["status"] == "open" else None
    charge(state, invoice or renewal_invoice(state, subscription), "fail")


def cancel(state: StripeState, queue_customer_id: str) -> None:
    """The customer's live subscription is canceled now."""
    _end(state, live_subscription(state, customer_of(state, queue_customer_id)["id"]))


def pause_collection(state: StripeState, queue_customer_id: str, *, resume: bool) -> None:
    """Collection on the live subscription pauses (invoices stay drafts, `behavior` void)
    or resumes, as the Dashboard or `pause_collection` on the API does."""
    subscription = live_subscription(state, customer_of(state, queue_customer_id)["id"])
    previous = {"pause_collection": subscription.get("pause_collection")}
    paused = None if resume else {"behavior": "void", "resumes_at": None}
    if previous["pause_collection"] != paused:
        subscription["pause_collection"] = paused
        state.emit("customer.subscription.updated", subscription, previous)
