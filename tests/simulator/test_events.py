"""Events built from the fixtures and signed with the SDK's helper verify with the SDK."""

from __future__ import annotations

import json
import time

import pytest
import stripe

from raxx_queue.simulator.events import (
    build_event,
    checkout_session_obj,
    customer_obj,
    invoice_obj,
    sign,
    signed,
    signed_multi,
    subscription_obj,
)

SECRET = "whsec_test_current"
OLD_SECRET = "whsec_test_previous"
PERIOD_END = 1_762_000_000


def _subscription_event(*, legacy_shape: bool = False) -> dict[str, object]:
    subscription = subscription_obj(
        "sub_1", "cus_1", "active", "price_pro", PERIOD_END, legacy_shape=legacy_shape
    )
    return build_event(
        "customer.subscription.updated",
        subscription,
        event_id="evt_1",
        created=1_760_000_000,
        previous_attributes={"status": "past_due"},
    )


def test_signed_event_verifies_with_construct_event() -> None:
    body, header = signed(_subscription_event(), SECRET)

    event = stripe.Webhook.construct_event(body, header, SECRET)

    assert event.id == "evt_1"
    assert event.type == "customer.subscription.updated"
    assert event.api_version == "2025-09-30.clover"
    assert event.data.to_dict()["previous_attributes"] == {"status": "past_due"}
    assert event.data.object["items"].data[0].current_period_end == PERIOD_END


def test_signature_covers_the_exact_bytes() -> None:
    body, header = signed(_subscription_event(), SECRET)

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body + b" ", header, SECRET)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, header, OLD_SECRET)


def test_multi_signature_header_verifies_with_each_secret() -> None:
    body, header = signed_multi(_subscription_event(), [OLD_SECRET, SECRET])

    assert header.count("v1=") == 2
    for secret in (OLD_SECRET, SECRET):
        assert stripe.Webhook.construct_event(body, header, secret).id == "evt_1"


def test_other_scheme_and_old_timestamp_are_rejected() -> None:
    body = json.dumps(_subscription_event()).encode()

    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, sign(body, SECRET, scheme="v0"), SECRET)
    stale = sign(body, SECRET, int(time.time()) - 600)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(body, stale, SECRET, tolerance=300)


def test_sign_matches_the_sdk_header_format() -> None:
    body = b'{"id":"evt_x"}'

    header = sign(body, SECRET, 1_700_000_000)

    expected = stripe.WebhookSignature.generate_signature_header(
        body.decode(), SECRET, 1_700_000_000
    )
    assert header == expected
    assert header.startswith("t=1700000000,v1=")


def test_subscription_shapes() -> None:
    current = subscription_obj("sub_1", "cus_1", "trialing", "price_pro", PERIOD_END, trial_end=5)
    legacy = subscription_obj(
        "sub_1", "cus_1", "active", "price_pro", PERIOD_END, legacy_shape=True
    )

    assert "current_period_end" not in current
    assert current["items"]["data"][0]["current_period_end"] == PERIOD_END
    assert current["trial_end"] == 5
    assert legacy["current_period_end"] == PERIOD_END
    assert "current_period_end" not in legacy["items"]["data"][0]


def test_invoice_shapes() -> None:
    current = invoice_obj("in_1", "cus_1", "sub_1", "paid")
    legacy = invoice_obj("in_1", "cus_1", "sub_1", "open", paid=False, legacy_shape=True)

    assert current["parent"]["subscription_details"]["subscription"] == "sub_1"
    assert "subscription" not in current
    assert "paid" not in current
    assert current["amount_remaining"] == 0
    assert (legacy["subscription"], legacy["paid"]) == ("sub_1", False)
    assert "parent" not in legacy


def test_customer_and_checkout_session_objects() -> None:
    customer = customer_obj("cus_1", "a@example.com", "Ann", "qc_1")
    session = checkout_session_obj("cs_test_1", "cus_1", "sub_1", "qc_1")

    assert customer["metadata"] == {"queue_customer_id": "qc_1"}
    assert (customer["object"], customer["email"]) == ("customer", "a@example.com")
    assert (session["object"], session["mode"], session["status"]) == (
        "checkout.session",
        "subscription",
        "complete",
    )
    assert (session["customer"], session["subscription"], session["client_reference_id"]) == (
        "cus_1",
        "sub_1",
        "qc_1",
    )
