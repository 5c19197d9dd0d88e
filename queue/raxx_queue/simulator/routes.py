"""Event endpoints of the Stripe double and the table routing every request to its endpoint."""

from __future__ import annotations

import re

from raxx_queue.simulator import routes_billing as billing
from raxx_queue.simulator import routes_customers as customers
from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.state import (
    Call,
    Handler,
    StripeApiError,
    StripeState,
    created_matches,
    flag,
    paginate,
)


def list_events(state: StripeState, call: Call) -> Json:
    params = call.params
    types = params.get("types") or ([params["type"]] if params.get("type") else None)
    delivered = params.get("delivery_success")
    ordered = list(state.events.values())
    # newest first; events sharing a second keep Stripe's order (the later one first)
    ordered.reverse()
    ordered.sort(key=lambda event: event["created"], reverse=True)
    matching = [
        event
        for event in ordered
        if (types is None or _type_matches(event["type"], types))
        and created_matches(event["created"], params.get("created"))
        and (delivered is None or flag(delivered) == (event["id"] not in state.undelivered_events))
    ]
    return state.render(paginate(matching, params, "/v1/events"), call.expand)


def _type_matches(event_type: str, patterns: list[str]) -> bool:
    """Stripe's `types[]` filter, including `customer.*` wildcards."""
    return any(
        event_type == pattern or (pattern.endswith(".*") and event_type.startswith(pattern[:-1]))
        for pattern in patterns
    )


def retrieve_event(state: StripeState, call: Call) -> Json:
    return state.render(state.get(call.arg()), call.expand)


_ID = "([^/]+)"
_TABLE: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/v1/customers", customers.create_customer),
    ("GET", "/v1/customers/search", customers.search_customers),
    ("GET", "/v1/customers", customers.list_customers),
    ("GET", f"/v1/customers/{_ID}", customers.retrieve_customer),
    ("POST", f"/v1/customers/{_ID}", customers.update_customer),
    ("DELETE", f"/v1/customers/{_ID}", billing.delete_customer),
    ("POST", f"/v1/payment_methods/{_ID}/attach", customers.attach_payment_method),
    ("GET", f"/v1/payment_methods/{_ID}", customers.retrieve_payment_method),
    ("POST", "/v1/subscriptions", billing.create_subscription),
    ("GET", "/v1/subscriptions", billing.list_subscriptions),
    ("GET", f"/v1/subscriptions/{_ID}", billing.retrieve_subscription),
    ("POST", f"/v1/subscriptions/{_ID}", billing.update_subscription),
    ("DELETE", f"/v1/subscriptions/{_ID}", billing.cancel_subscription),
    ("GET", "/v1/invoices", billing.list_invoices),
    ("GET", f"/v1/invoices/{_ID}", billing.retrieve_invoice),
    ("POST", "/v1/checkout/sessions", billing.create_checkout_session),
    ("GET", f"/v1/checkout/sessions/{_ID}", billing.retrieve_checkout_session),
    ("POST", "/v1/billing_portal/sessions", billing.create_portal_session),
    ("GET", "/v1/events", list_events),
    ("GET", f"/v1/events/{_ID}", retrieve_event),
)
ROUTES: tuple[tuple[str, re.Pattern[str], Handler], ...] = tuple(
    (method, re.compile(pattern), handler) for method, pattern, handler in _TABLE
)


def resolve(method: str, path: str) -> tuple[Handler, tuple[str, ...]]:
    """The endpoint serving `method path` and the ids in the path, or Stripe's 404."""
    for route_method, pattern, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match and route_method == method:
            return handler, match.groups()
    raise StripeApiError(
        404,
        "invalid_request_error",
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/.",
    )
