"""The simulator's Stripe over time: events for every change, test cards, renewals, dunning.

Driven through the real stripe SDK (the calls Queue makes), then by the lifecycle the
`raxx-queue simulate` scenarios run; every event is checked to parse with the SDK.
"""

from __future__ import annotations

import json

import pytest
import stripe

from raxx_queue.simulator import lifecycle
from raxx_queue.simulator.clock import SimulatedClock
from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.transport import make_stripe_client
from raxx_queue.stripe_gateway import STRIPE_API_VERSION

PRICE = "price_pro_monthly"
SECRET = "whsec_simulator_test"


@pytest.fixture
def clock() -> SimulatedClock:
    return SimulatedClock()


@pytest.fixture
def double(clock: SimulatedClock) -> StripeDouble:
    return StripeDouble(clock=clock)


@pytest.fixture
def events(double: StripeDouble) -> list[Json]:
    emitted: list[Json] = []
    double.listen(emitted.append)
    return emitted


async def _subscribe(
    double: StripeDouble, card: str, queue_id: str = "qc_1"
) -> stripe.Subscription:
    """What Queue's subscribe flow asks of Stripe."""
    client = make_stripe_client(double)
    customer = await client.v1.customers.create_async(
        {"email": f"{queue_id}@example.com", "metadata": {"queue_customer_id": queue_id}}
    )
    method = await client.v1.payment_methods.attach_async(card, {"customer": customer.id})
    await client.v1.customers.update_async(
        customer.id, {"invoice_settings": {"default_payment_method": method.id}}
    )
    return await client.v1.subscriptions.create_async(
        {
            "customer": customer.id,
            "items": [{"price": PRICE}],
            "payment_behavior": "default_incomplete",
            "metadata": {"queue_customer_id": queue_id},
        }
    )


def _types(events: list[Json]) -> list[str]:
    return [event["type"] for event in events]


def _status(double: StripeDouble, subscription_id: str) -> str:
    status: str = double.get(subscription_id)["status"]
    return status


async def test_every_change_is_an_event_the_sdk_reads(
    double: StripeDouble, events: list[Json]
) -> None:
    subscription = await _subscribe(double, "pm_card_visa")
    assert _types(events) == [
        "customer.created",
        "payment_method.attached",
        "customer.updated",
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
    ]
    double.run(lambda state: lifecycle.confirm_first_payment(state, subscription.id))
    assert _types(events)[6:] == [
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
    ]
    assert _status(double, subscription.id) == "active"
    for event in events:
        assert event["api_version"] == STRIPE_API_VERSION
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
        parsed = stripe.Webhook.construct_event(payload, header, SECRET)
        assert parsed.id == event["id"]
    # and the Events API lists them, newest first
    listed = await make_stripe_client(double).v1.events.list_async({"limit": 100})
    assert [e.id for e in listed.data] == [e["id"] for e in reversed(events)]


async def test_the_suite_s_double_emits_nothing_unless_asked() -> None:
    double = StripeDouble()
    await _subscribe(double, "pm_card_visa")
    assert double.run(lambda state: len(state.events)) == 0


async def test_a_declining_card_is_refused_when_attached(
    double: StripeDouble, events: list[Json]
) -> None:
    with pytest.raises(stripe.CardError) as refused:
        await _subscribe(double, "pm_card_chargeDeclined")
    assert refused.value.code == "card_declined"
    assert _types(events) == ["customer.created"]


async def test_a_card_whose_charges_fail_attaches_and_stays_incomplete(
    double: StripeDouble, events: list[Json]
) -> None:
    subscription = await _subscribe(double, "pm_card_chargeCustomerFail")
    double.run(lambda state: lifecycle.confirm_first_payment(state, subscription.id))
    assert _types(events)[-1] == "invoice.payment_failed"
    assert _status(double, subscription.id) == "incomplete"


async def test_dunning_retries_then_unpaid_and_paying_restores(
    double: StripeDouble, clock: SimulatedClock, events: list[Json]
) -> None:
    subscription = await _subscribe(double, "pm_card_visa")
    double.run(lambda state: lifecycle.confirm_first_payment(state, subscription.id))
    double.run(lambda state: lifecycle.fail_payment(state, "qc_1"))
    assert _status(double, subscription.id) == "past_due"
    before = len(events)

    clock.advance(8 * lifecycle.DAY)
    double.run(lifecycle.run_due)
    retries = [e for e in events[before:] if e["type"] == "invoice.payment_failed"]
    assert [e["data"]["object"]["attempt_count"] for e in retries] == [2, 3, 4]
    assert retries[-1]["data"]["object"]["next_payment_attempt"] is None
    assert _status(double, subscription.id) == "unpaid"

    double.run(lambda state: lifecycle.pay(state, "qc_1"))
    assert _status(double, subscription.id) == "active"


async def test_a_month_renews_and_bills_the_next_period(
    double: StripeDouble, clock: SimulatedClock, events: list[Json]
) -> None:
    subscription = await _subscribe(double, "pm_card_visa")
    double.run(lambda state: lifecycle.confirm_first_payment(state, subscription.id))
    period_end = double.get(subscription.id)["items"]["data"][0]["current_period_end"]
    before = len(events)
    clock.advance(31 * lifecycle.DAY)
    double.run(lifecycle.run_due)
    assert _types(events[before:]) == [
        "customer.subscription.updated",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
    ]
    renewed = double.get(subscription.id)["items"]["data"][0]
    assert renewed["current_period_start"] == period_end
    assert _status(double, subscription.id) == "active"


async def test_cancel_and_delete(double: StripeDouble, events: list[Json]) -> None:
    subscription = await _subscribe(double, "pm_card_visa")
    double.run(lambda state: lifecycle.cancel(state, "qc_1"))
    assert _types(events)[-1] == "customer.subscription.deleted"
    assert _status(double, subscription.id) == "canceled"
    with pytest.raises(stripe.InvalidRequestError):
        await make_stripe_client(double).v1.customers.retrieve_async("cus_missing")
