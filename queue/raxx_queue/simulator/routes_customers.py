"""Customer, payment-method, Checkout and Customer Portal endpoints of the Stripe double."""

from __future__ import annotations

import re
from collections.abc import Callable

from raxx_queue.simulator import objects
from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.state import (
    Call,
    StripeState,
    card_declined,
    created_matches,
    invalid_param,
    live_customer,
    merge_metadata,
    newest_first,
    paginate,
    parameter_missing,
)

# --- customers ---------------------------------------------------------------------------


def create_customer(state: StripeState, call: Call) -> Json:
    params = call.params
    customer = objects.customer_obj(
        state.new_id("cus_", 14),
        params.get("email"),
        params.get("name"),
        None,
        created=state.now(),
        metadata=merge_metadata({}, params.get("metadata")),
    )
    _apply_customer_fields(customer, params)
    state.store(customer)
    state.emit("customer.created", customer)
    return state.render(customer, call.expand)


def _apply_customer_fields(customer: Json, params: Json) -> None:
    for name in ("email", "name", "description", "phone"):
        if name in params:
            customer[name] = params[name] or None
    if "metadata" in params:
        customer["metadata"] = merge_metadata(customer["metadata"], params["metadata"])
    settings = params.get("invoice_settings") or {}
    if "default_payment_method" in settings:
        customer["invoice_settings"]["default_payment_method"] = (
            settings["default_payment_method"] or None
        )


def retrieve_customer(state: StripeState, call: Call) -> Json:
    return state.render(state.get(call.arg()), call.expand)


def update_customer(state: StripeState, call: Call) -> Json:
    customer = live_customer(state, call.arg(), "id")
    _apply_customer_fields(customer, call.params)
    state.emit("customer.updated", customer)
    return state.render(customer, call.expand)


def list_customers(state: StripeState, call: Call) -> Json:
    params = call.params
    matching = [
        customer
        for customer in state.customers.values()
        if not customer.get("deleted")
        and params.get("email") in (None, customer["email"])
        and created_matches(customer["created"], params.get("created"))
    ]
    listed = paginate(newest_first(matching), params, "/v1/customers")
    return state.render(listed, call.expand)


_CLAUSE = re.compile(
    r"^\s*(metadata\[['\"](?P<key>[^'\"]+)['\"]\]|(?P<field>\w+))\s*(?P<op>[:~])\s*['\"](?P<value>[^'\"]*)['\"]\s*$"
)


def search_customers(state: StripeState, call: Call) -> Json:
    query = call.params.get("query")
    if not query:
        raise parameter_missing("query")
    clauses = [_parse_clause(text) for text in re.split(r"\s+AND\s+", query, flags=re.IGNORECASE)]
    matching = [
        customer
        for customer in newest_first(list(state.customers.values()))
        if not customer.get("deleted") and all(clause(customer) for clause in clauses)
    ]
    limit = int(call.params.get("limit", 10))
    offset = int(call.params.get("page") or 0)
    page = matching[offset : offset + limit]
    has_more = offset + limit < len(matching)
    result = {
        "object": "search_result",
        "url": "/v1/customers/search",
        "data": page,
        "has_more": has_more,
        "next_page": str(offset + limit) if has_more else None,
    }
    return state.render(result, call.expand)


def _parse_clause(text: str) -> Callable[[Json], bool]:
    match = _CLAUSE.match(text)
    if match is None:
        raise invalid_param("query", f"Unsupported search query clause: {text!r}")
    key, name, value = match["key"], match["field"], match["value"]
    contains = match["op"] == "~"

    def clause(customer: Json) -> bool:
        actual = customer["metadata"].get(key) if key else customer.get(name)
        if actual is None:
            return False
        return value in str(actual) if contains else str(actual) == value

    return clause


# --- payment methods ---------------------------------------------------------------------

# Stripe's test payment methods (docs.stripe.com/testing): these decline when attached,
# with this decline code; pm_card_chargeCustomerFail attaches, and its charges fail.
DECLINED_ON_ATTACH = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_visa_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "pm_card_chargeDeclinedExpiredCard": "expired_card",
}
FAILS_WHEN_CHARGED = frozenset({"pm_card_chargeCustomerFail"})


def attach_payment_method(state: StripeState, call: Call) -> Json:
    customer_id = call.params.get("customer")
    if not customer_id:
        raise parameter_missing("customer")
    live_customer(state, customer_id, "customer")
    token = call.arg()
    if token in DECLINED_ON_ATTACH:
        raise card_declined(DECLINED_ON_ATTACH[token])
    # Stripe's test tokens (pm_card_visa, …) attach as a fresh PaymentMethod with its own id.
    method_id = state.new_id("pm_") if token.startswith("pm_card_") else token
    method = objects.payment_method_obj(method_id, customer_id, created=state.now())
    if token in FAILS_WHEN_CHARGED:
        state.card_behaviour[method_id] = "fails"
    state.store(method)
    state.emit("payment_method.attached", method)
    return state.render(method, call.expand)


def retrieve_payment_method(state: StripeState, call: Call) -> Json:
    return state.render(state.get(call.arg()), call.expand)
