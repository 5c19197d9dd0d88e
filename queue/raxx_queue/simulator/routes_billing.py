"""Invoice, Checkout and Customer Portal endpoints of the Stripe double."""

from __future__ import annotations

from raxx_queue.simulator import objects
from raxx_queue.simulator.fixtures import Json, fixture
from raxx_queue.simulator.routes_subscriptions import item_price, required
from raxx_queue.simulator.state import (
    Call,
    StripeApiError,
    StripeState,
    created_matches,
    live_customer,
    merge_metadata,
    newest_first,
    paginate,
    parameter_missing,
)

# --- invoices ----------------------------------------------------------------------------


def list_invoices(state: StripeState, call: Call) -> Json:
    params = call.params
    matching = [
        invoice
        for invoice in state.invoices.values()
        if params.get("customer") in (None, invoice["customer"])
        and params.get("subscription") in (None, invoice_subscription(invoice))
        and params.get("status") in (None, invoice["status"])
        and created_matches(invoice["created"], params.get("created"))
    ]
    return state.render(paginate(newest_first(matching), params, "/v1/invoices"), call.expand)


def invoice_subscription(invoice: Json) -> str | None:
    """The invoice's subscription id, in the current place or the legacy one."""
    details = (invoice.get("parent") or {}).get("subscription_details") or {}
    found: str | None = details.get("subscription") or invoice.get("subscription")
    return found


def retrieve_invoice(state: StripeState, call: Call) -> Json:
    return state.render(state.get(call.arg()), call.expand)


# --- Checkout and Customer Portal --------------------------------------------------------


def create_checkout_session(state: StripeState, call: Call) -> Json:
    params = call.params
    mode = required(params, "mode")
    if params.get("customer") and params.get("customer_email"):
        raise StripeApiError(
            400,
            "invalid_request_error",
            "You may only specify one of these parameters: customer, customer_email.",
            param="customer_email",
        )
    if params.get("customer"):
        live_customer(state, params["customer"], "customer")
    line_items: list[Json] = params.get("line_items") or []
    if mode in ("subscription", "payment") and not line_items:
        raise parameter_missing("line_items")
    session_id = state.new_id("cs_test_", 58)
    session = objects.checkout_session_obj(
        session_id,
        params.get("customer"),
        None,
        params.get("client_reference_id"),
        mode=mode,
        status="open",
        payment_status="unpaid",
        customer_email=params.get("customer_email"),
        created=state.now(),
        url=f"https://checkout.stripe.test/c/pay/{session_id}",
        success_url=params.get("success_url"),
        cancel_url=params.get("cancel_url"),
        metadata=merge_metadata({}, params.get("metadata")),
    )
    state.includable[session_id] = {"line_items": _line_items(state, session_id, line_items)}
    return state.render(state.store(session), call.expand)


def _line_items(state: StripeState, session_id: str, specs: list[Json]) -> Json:
    data = []
    for index, spec in enumerate(specs):
        item = fixture("item")
        price = objects.price_obj(item_price(spec, index))
        quantity = int(spec.get("quantity", 1))
        total = price["unit_amount"] * quantity
        item.update(
            id=state.new_id("li_"),
            price=price,
            quantity=quantity,
            description="Queue subscription",
            amount_subtotal=total,
            amount_total=total,
            adjustable_quantity=None,
        )
        data.append(item)
    url = f"/v1/checkout/sessions/{session_id}/line_items"
    return {"object": "list", "data": data, "has_more": False, "url": url}


def retrieve_checkout_session(state: StripeState, call: Call) -> Json:
    return state.render(state.get(call.arg()), call.expand)


def create_portal_session(state: StripeState, call: Call) -> Json:
    params = call.params
    customer = live_customer(state, required(params, "customer"), "customer")
    session = objects.portal_session_obj(
        state.new_id("bps_"),
        customer["id"],
        params.get("return_url"),
        f"https://billing.stripe.test/p/session/test_{state.new_id('', 40)}",
        created=state.now(),
    )
    return state.render(state.store(session), call.expand)
