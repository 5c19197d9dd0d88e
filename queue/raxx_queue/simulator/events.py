"""Stripe webhook events built from the official fixtures, signed with the SDK's own helper.

    event = build_event("customer.subscription.updated", subscription_obj(...))
    body, header = signed(event, "whsec_test")
    response = await http.post(WEBHOOK, content=body, headers={"Stripe-Signature": header})

Signing uses `stripe.WebhookSignature.generate_signature_header` (public in stripe 16.1,
documented "useful for signing payloads in unit tests"); other schemes and several secrets
use `stripe.WebhookSignature._compute_signature`, the HMAC the SDK verifies with.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Mapping, Sequence
from typing import Any

import stripe

from raxx_queue.simulator.fixtures import Json, fixture
from raxx_queue.simulator.objects import (
    checkout_session_obj,
    customer_obj,
    new_id,
    subscription_obj,
)
from raxx_queue.simulator.payment_objects import invoice_obj

__all__ = [
    "DEFAULT_EVENT_API_VERSION",
    "build_event",
    "checkout_session_obj",
    "customer_obj",
    "event_body",
    "invoice_obj",
    "sign",
    "sign_multi",
    "signed",
    "signed_multi",
    "subscription_obj",
]

DEFAULT_EVENT_API_VERSION = "2025-09-30.clover"


def build_event(
    type: str,
    data_object: Mapping[str, Any],
    *,
    event_id: str | None = None,
    created: int | None = None,
    previous_attributes: Mapping[str, Any] | None = None,
    api_version: str = DEFAULT_EVENT_API_VERSION,
    livemode: bool = False,
    request_id: str | None = None,
    idempotency_key: str | None = None,
) -> Json:
    """An `event` object (from the fixture) carrying a copy of `data_object`."""
    event = fixture("event")
    data: Json = {"object": copy.deepcopy(dict(data_object))}
    if previous_attributes is not None:
        data["previous_attributes"] = dict(previous_attributes)
    event.update(
        id=event_id or new_id("evt_"),
        type=type,
        created=int(time.time()) if created is None else created,
        api_version=api_version,
        livemode=livemode,
        pending_webhooks=1,
        request={"id": request_id, "idempotency_key": idempotency_key},
        data=data,
    )
    return event


def event_body(event: Mapping[str, Any]) -> bytes:
    """The bytes Stripe would POST for `event` (compact JSON)."""
    return json.dumps(event, separators=(",", ":")).encode()


def sign(payload: bytes, secret: str, timestamp: int | None = None, *, scheme: str = "v1") -> str:
    """A `Stripe-Signature` header (`t=…,v1=…`) for exactly these bytes."""
    moment = int(time.time()) if timestamp is None else timestamp
    text = payload.decode("utf-8")
    if scheme == stripe.WebhookSignature.EXPECTED_SCHEME:
        header: str = stripe.WebhookSignature.generate_signature_header(text, secret, moment)
        return header
    return f"t={moment},{scheme}={_signature(text, secret, moment)}"


def sign_multi(payload: bytes, secrets: Sequence[str], timestamp: int | None = None) -> str:
    """A header with one `v1=` entry per secret, as Stripe sends while a secret rotates."""
    moment = int(time.time()) if timestamp is None else timestamp
    text = payload.decode("utf-8")
    entries = ",".join(f"v1={_signature(text, secret, moment)}" for secret in secrets)
    return f"t={moment},{entries}"


def _signature(text: str, secret: str, timestamp: int) -> str:
    signature: str = stripe.WebhookSignature._compute_signature(f"{timestamp}.{text}", secret)
    return signature


def signed(
    event: Mapping[str, Any] | bytes,
    secret: str,
    *,
    timestamp: int | None = None,
    scheme: str = "v1",
) -> tuple[bytes, str]:
    """`(body, Stripe-Signature header)` for an event (or raw body bytes)."""
    body = event if isinstance(event, bytes) else event_body(event)
    return body, sign(body, secret, timestamp, scheme=scheme)


def signed_multi(
    event: Mapping[str, Any] | bytes, secrets: Sequence[str], *, timestamp: int | None = None
) -> tuple[bytes, str]:
    """`(body, header)` signed with every secret in `secrets`."""
    body = event if isinstance(event, bytes) else event_body(event)
    return body, sign_multi(body, secrets, timestamp)
