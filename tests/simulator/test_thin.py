"""Thin notifications of the double, and its v2 events, read by the real SDK."""

from __future__ import annotations

import time

import pytest
import stripe
import stripe.events

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.events import build_event, signed, subscription_obj
from raxx_queue.simulator.thin import (
    EVENT_GENERATION_FAILURE_RESOLVED,
    event_generation_failure,
    thin_for_snapshot,
)
from raxx_queue.simulator.transport import make_stripe_client

SECRET = "whsec_thin_test"


def _snapshot() -> dict[str, object]:
    subscription = subscription_obj("sub_1", "cus_1", "active", "price_pro", 1_900_000_000)
    return build_event(
        "customer.subscription.updated", subscription, event_id="evt_1", created=1_760_000_000
    )


async def test_a_v1_thin_notification_parses_as_its_typed_class_and_fetches_its_event() -> None:
    double = StripeDouble()
    client = make_stripe_client(double)
    notification, full = thin_for_snapshot(_snapshot())
    double.add_v2_event(full)
    body, header = signed(notification, SECRET)

    parsed = client.parse_event_notification(body, header, SECRET)
    fetched = await parsed.fetch_event_async()
    typed = await client.v2.core.events.retrieve_async(parsed.id)

    assert isinstance(parsed, stripe.events.V1CustomerSubscriptionUpdatedEventNotification)
    assert parsed.type == "v1.customer.subscription.updated"
    assert parsed.created == "2025-10-09T08:53:20.000Z"
    assert (parsed.related_object.id, parsed.related_object.type) == ("sub_1", "subscription")
    assert parsed.related_object.url == "/v1/subscriptions/sub_1"
    assert fetched.snapshot_event == "evt_1"
    assert typed.snapshot_event == "evt_1"
    [request] = double.requests_to("GET", "/v2/core/events/")[:1]
    assert request.path == f"/v2/core/events/{parsed.id}"
    assert "data" not in notification
    assert "snapshot_event" not in notification


async def test_a_health_alert_is_an_unknown_notification_whose_event_names_the_object() -> None:
    double = StripeDouble()
    client = make_stripe_client(double)
    notification, full = event_generation_failure(
        "customer.subscription.updated", "sub_1", "subscription", resolved_at=time.time()
    )
    double.add_v2_event(full)
    body, header = signed(notification, SECRET)

    parsed = client.parse_event_notification(body, header, SECRET)
    event = (await client.v2.core.events.retrieve_async(parsed.id)).to_dict()

    assert isinstance(parsed, stripe.events.UnknownEventNotification)
    assert parsed.type == EVENT_GENERATION_FAILURE_RESOLVED
    impact = event["data"]["impact"]
    assert impact["event_type"] == "customer.subscription.updated"
    assert impact["related_object"] == {
        "id": "sub_1",
        "type": "subscription",
        "url": "/v1/subscriptions/sub_1",
    }


async def test_an_unknown_v2_event_is_stripes_404() -> None:
    client = make_stripe_client(StripeDouble())

    with pytest.raises(stripe.InvalidRequestError) as caught:
        await client.v2.core.events.retrieve_async("evt_test_missing")

    assert caught.value.http_status == 404


def test_a_thin_notification_with_a_wrong_secret_is_refused() -> None:
    client = make_stripe_client(StripeDouble())
    notification, _ = thin_for_snapshot(_snapshot())
    body, header = signed(notification, "whsec_other")

    with pytest.raises(stripe.SignatureVerificationError):
        client.parse_event_notification(body, header, SECRET)
