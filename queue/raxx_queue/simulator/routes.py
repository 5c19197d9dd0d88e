"""Event endpoints of the Stripe double and the table routing every request to its endpoint."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable

from raxx_queue.simulator import routes_billing as billing
from raxx_queue.simulator import routes_customers as customers
from raxx_queue.simulator import routes_subscriptions as subscriptions
from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.state import (
    Call,
    Handler,
    StripeApiError,
    StripeState,
    created_matches,
    flag,
    invalid_param,
    paginate,
    resource_missing,
)

# Stripe keeps events for 30 days: older ones are neither listed nor retrievable.
EVENT_RETENTION_SECONDS = 30 * 86_400
MAX_TYPES = 20


def list_events(state: StripeState, call: Call) -> Json:
    params = call.params
    types = _event_types(params)
    delivered = params.get("delivery_success")
    oldest = _oldest_kept(state)
    ordered = list(state.events.values())
    # newest first; events sharing a second keep Stripe's order (the later one first)
    ordered.reverse()
    ordered.sort(key=lambda event: event["created"], reverse=True)
    matching = [
        event
        for event in ordered
        if event["created"] >= oldest
        and (types is None or types(event["type"]))
        and created_matches(event["created"], params.get("created"))
        and (delivered is None or flag(delivered) == (event["id"] not in state.undelivered_events))
    ]
    return state.render(paginate(matching, params, "/v1/events"), call.expand)


def _oldest_kept(state: StripeState) -> int:
    """`created` of the oldest event Stripe still keeps. The simulator stamps events with
    the wall clock while `advance` moves the account's clock on: the earlier of the two
    decides, so advancing time does not age events out."""
    return min(state.now(), int(time.time())) - EVENT_RETENTION_SECONDS


def _event_types(params: Json) -> Callable[[str], bool] | None:
    """`type` (one name, or a group such as `invoice.*`) or `types[]` (up to 20 exact
    names), as a test of an event's type; None when neither is given."""
    single, many = params.get("type"), params.get("types")
    if single is not None and many is not None:
        raise invalid_param("types", "You may pass either `type` or `types`, but not both.")
    if many is not None:
        names = frozenset([many] if isinstance(many, str) else many)
        if len(names) > MAX_TYPES:
            raise invalid_param("types", f"You may pass at most {MAX_TYPES} types.")
        return names.__contains__
    if not single:
        return None
    group = str(single)
    if group.endswith(".*"):
        return lambda event_type: event_type.startswith(group[:-1])
    return lambda event_type: event_type == group


def retrieve_event(state: StripeState, call: Call) -> Json:
    event = state.get(call.arg())
    if event["created"] < _oldest_kept(state):
        raise resource_missing("event", call.arg())
    return state.render(event, call.expand)


def retrieve_charge(state: StripeState, call: Call) -> Json:
    """A charge put into the double (tests of disputes: which customer paid it)."""
    return state.render(state.get(call.arg()), call.expand)


def retrieve_v2_event(state: StripeState, call: Call) -> Json:
    """GET /v2/core/events/{id}: the full event behind a thin notification."""
    event = state.v2_events.get(call.arg())
    if event is None:
        raise resource_missing("event", call.arg())
    return copy.deepcopy(event)


_ID = "([^/]+)"
_TABLE: tuple[tuple[str, str, Handler], ...] = (
    ("POST", "/v1/customers", customers.create_customer),
    ("GET", "/v1/customers/search", customers.search_customers),
    ("GET", "/v1/customers", customers.list_customers),
    ("GET", f"/v1/customers/{_ID}", customers.retrieve_customer),
    ("POST", f"/v1/customers/{_ID}", customers.update_customer),
    ("DELETE", f"/v1/customers/{_ID}", subscriptions.delete_customer),
    ("POST", f"/v1/payment_methods/{_ID}/attach", customers.attach_payment_method),
    ("GET", f"/v1/payment_methods/{_ID}", customers.retrieve_payment_method),
    ("POST", "/v1/subscriptions", subscriptions.create_subscription),
    ("GET", "/v1/subscriptions", subscriptions.list_subscriptions),
    ("GET", f"/v1/subscriptions/{_ID}", subscriptions.retrieve_subscription),
    ("POST", f"/v1/subscriptions/{_ID}", subscriptions.update_subscription),
    ("DELETE", f"/v1/subscriptions/{_ID}", subscriptions.cancel_subscription),
    ("GET", "/v1/invoices", billing.list_invoices),
    ("GET", f"/v1/invoices/{_ID}", billing.retrieve_invoice),
    ("GET", f"/v1/charges/{_ID}", retrieve_charge),
    ("POST", "/v1/checkout/sessions", billing.create_checkout_session),
    ("GET", f"/v1/checkout/sessions/{_ID}", billing.retrieve_checkout_session),
    ("POST", "/v1/billing_portal/sessions", billing.create_portal_session),
    ("GET", "/v1/events", list_events),
    ("GET", f"/v1/events/{_ID}", retrieve_event),
    ("GET", f"/v2/core/events/{_ID}", retrieve_v2_event),
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
