"""The double's Events API as the catch-up reads it, checked with the real SDK."""

from __future__ import annotations

import pytest
import stripe

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.events import build_event, customer_obj, invoice_obj
from raxx_queue.simulator.transport import make_stripe_client

NOW = 1_760_000_000


@pytest.fixture
def double() -> StripeDouble:
    double = StripeDouble(clock=lambda: NOW)
    customer = customer_obj("cus_1", None, None, "qc_1")
    invoice = invoice_obj("in_1", "cus_1", "sub_1", "paid")
    events = [
        ("evt_c", "customer.updated", customer, NOW - 30),
        ("evt_i1", "invoice.paid", invoice, NOW - 20),
        ("evt_i2", "invoice.payment_failed", invoice, NOW - 10),
        ("evt_p", "payout.paid", {"id": "po_1", "object": "payout"}, NOW - 5),
    ]
    for event_id, type_, obj, created in events:
        event = build_event(type_, obj, event_id=event_id, created=created)
        double.add_event(event, delivered=event_id != "evt_i1")
    return double


async def _ids(client: stripe.StripeClient, params: stripe.params.EventListParams) -> list[str]:
    page = await client.v1.events.list_async(params)
    return [event.id async for event in page.auto_paging_iter()]


async def test_types_are_exact_names_and_type_takes_a_group(double: StripeDouble) -> None:
    client = make_stripe_client(double)

    exact = await _ids(client, {"types": ["invoice.paid", "customer.updated"]})
    group = await _ids(client, {"type": "invoice.*"})
    no_group_in_types = await _ids(client, {"types": ["invoice.*"]})

    assert exact == ["evt_i1", "evt_c"]
    assert group == ["evt_i2", "evt_i1"]
    assert no_group_in_types == []
    assert double.requests_to("GET", "/v1/events")[0].query["types"] == [
        "invoice.paid",
        "customer.updated",
    ]


async def test_type_and_types_together_or_too_many_types_are_refused(
    double: StripeDouble,
) -> None:
    client = make_stripe_client(double)

    with pytest.raises(stripe.InvalidRequestError) as both:
        await client.v1.events.list_async({"type": "invoice.*", "types": ["invoice.paid"]})
    with pytest.raises(stripe.InvalidRequestError) as many:
        await client.v1.events.list_async({"types": [f"t{n}.x" for n in range(21)]})

    assert (both.value.http_status, both.value.param) == (400, "types")
    assert (many.value.http_status, many.value.param) == (400, "types")


async def test_undelivered_events_within_a_window_a_page_at_a_time(double: StripeDouble) -> None:
    client = make_stripe_client(double)
    window: stripe.params.EventListParams = {
        "created": {"gte": NOW - 25, "lt": NOW - 5},
        "delivery_success": False,
        "types": ["invoice.paid", "invoice.payment_failed", "customer.updated"],
    }

    before = await _ids(client, window)
    double.mark_delivered("evt_i1")
    after = await _ids(client, window)
    first = await client.v1.events.list_async({"limit": 1})
    rest = await client.v1.events.list_async({"limit": 1, "starting_after": first.data[0].id})

    assert before == ["evt_i1"]
    assert after == []
    assert ([e.id for e in first.data], first.has_more) == (["evt_p"], True)
    assert [e.id for e in rest.data] == ["evt_i2"]


async def test_a_scripted_429_carries_retry_after(double: StripeDouble) -> None:
    client = make_stripe_client(double)
    double.fail_next("/v1/events", "rate_limit", retry_after=7)

    with pytest.raises(stripe.RateLimitError) as caught:
        await client.v1.events.list_async({"limit": 1})
    after = await client.v1.events.list_async({"limit": 1})

    assert caught.value.http_status == 429
    assert caught.value.headers is not None
    assert caught.value.headers["retry-after"] == "7"
    assert [e.id for e in after.data] == ["evt_p"]
