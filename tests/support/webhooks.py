"""Delivering signed Stripe events to the app, as Stripe would."""

from __future__ import annotations

import time
from typing import Any

import httpx

from raxx_queue.simulator.events import (
    build_event,
    customer_obj,
    invoice_obj,
    signed,
    subscription_obj,
)
from tests.support import values

WEBHOOK = "/api/v1/billing/webhook"
T0 = int(time.time()) - 3600
PERIOD_END = T0 + 30 * 86_400


async def deliver(
    client: httpx.AsyncClient,
    event: dict[str, Any],
    *,
    secret: str = values.WEBHOOK_SECRET,
    timestamp: int | None = None,
) -> httpx.Response:
    body, header = signed(event, secret, timestamp=timestamp)
    return await client.post(
        WEBHOOK,
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


async def deliver_ok(client: httpx.AsyncClient, event: dict[str, Any]) -> str:
    response = await deliver(client, event)
    assert response.status_code == 200, response.text
    outcome: str = response.json()["outcome"]
    return outcome


def subscription_event(
    event_type: str,
    *,
    sub: str = "sub_1",
    customer: str = "cus_1",
    status: str = "active",
    price: str = values.PRICE_PRO,
    created: int = T0,
    period_end: int = PERIOD_END,
    queue_customer_id: str | None = "cust_1",
    legacy_shape: bool = False,
    event_id: str | None = None,
    cancel_at_period_end: bool = False,
) -> dict[str, Any]:
    obj = subscription_obj(
        sub,
        customer,
        status,
        price,
        period_end,
        cancel_at_period_end=cancel_at_period_end,
        legacy_shape=legacy_shape,
        created=T0 - 86_400,
        metadata={"queue_customer_id": queue_customer_id} if queue_customer_id else None,
    )
    return build_event(event_type, obj, created=created, event_id=event_id)


def invoice_event(
    event_type: str,
    *,
    invoice: str = "in_1",
    customer: str = "cus_1",
    sub: str | None = "sub_1",
    status: str = "paid",
    created: int = T0,
    legacy_shape: bool = False,
    attempt_count: int = 1,
) -> dict[str, Any]:
    obj = invoice_obj(
        invoice,
        customer,
        sub,
        status,
        legacy_shape=legacy_shape,
        created=created,
        price_id=values.PRICE_PRO,
        attempt_count=attempt_count,
    )
    return build_event(event_type, obj, created=created)


def customer_event(
    event_type: str,
    *,
    customer: str = "cus_1",
    email: str | None = "jenny.rosen@example.com",
    name: str | None = "Jenny Rosen",
    queue_customer_id: str | None = "cust_1",
    created: int = T0,
) -> dict[str, Any]:
    obj = customer_obj(customer, email, name, queue_customer_id, created=created)
    if event_type == "customer.deleted":
        obj["deleted"] = True
    return build_event(event_type, obj, created=created)
