"""Bad bodies on the write routes: 422 VALIDATION_ERROR, nothing sent to Stripe or stored."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from raxx_queue.simulator.double import StripeDouble
from tests.support import values
from tests.support.database import Conn

from .support import nothing_stored, subscribe_body

SUBSCRIBE = "/api/v1/billing/subscribe"
CUSTOMERS = "/api/v1/billing/customers"
CHECKOUT = "/api/v1/billing/checkout"
PORTAL = "/api/v1/billing/portal"
CHECKOUT_BODY = {"queue_customer_id": "qc_1", "email": "a@example.com", "plan_tier": "pro"}

CASES: list[tuple[str, str, Any]] = [
    ("subscribe: unknown tier", SUBSCRIBE, subscribe_body(plan_tier="enterprise")),
    ("subscribe: free is not a plan to buy", SUBSCRIBE, subscribe_body(plan_tier="free")),
    ("subscribe: id with a space", SUBSCRIBE, subscribe_body("qc 1")),
    ("subscribe: id with a slash", SUBSCRIBE, subscribe_body("qc/1")),
    ("subscribe: id too long", SUBSCRIBE, subscribe_body("q" * 65)),
    ("subscribe: empty id", SUBSCRIBE, subscribe_body("")),
    ("subscribe: id as a number", SUBSCRIBE, subscribe_body(queue_customer_id=42)),
    ("subscribe: not an email", SUBSCRIBE, subscribe_body(email="jenny")),
    ("subscribe: email without domain dot", SUBSCRIBE, subscribe_body(email="jenny@localhost")),
    ("subscribe: email with a space", SUBSCRIBE, subscribe_body(email="jen ny@example.com")),
    ("subscribe: email missing", SUBSCRIBE, {**subscribe_body(), "email": None}),
    ("subscribe: not a payment method", SUBSCRIBE, subscribe_body(payment_method_id="tok_visa")),
    ("subscribe: empty payment method", SUBSCRIBE, subscribe_body(payment_method_id="pm_")),
    ("subscribe: name too long", SUBSCRIBE, subscribe_body(name="x" * 257)),
    ("subscribe: name with a newline", SUBSCRIBE, subscribe_body(name="Jenny\nRosen")),
    ("subscribe: unknown field", SUBSCRIBE, {**subscribe_body(), "price_id": "price_cheap"}),
    ("subscribe: a list", SUBSCRIBE, [subscribe_body()]),
    ("customers: unknown field", CUSTOMERS, {"queue_customer_id": "qc_1", "plan": "pro"}),
    ("customers: bad email", CUSTOMERS, {"queue_customer_id": "qc_1", "email": "@example.com"}),
    ("customers: no id", CUSTOMERS, {"email": "a@example.com"}),
    ("checkout: unknown tier", CHECKOUT, {**CHECKOUT_BODY, "plan_tier": "gold"}),
    ("checkout: not a URL", CHECKOUT, {**CHECKOUT_BODY, "success_url": "not a url"}),
    ("checkout: ftp URL", CHECKOUT, {**CHECKOUT_BODY, "cancel_url": "ftp://app.raxx.test/x"}),
    ("checkout: email missing", CHECKOUT, {"queue_customer_id": "qc_1", "plan_tier": "pro"}),
    ("portal: javascript URL", PORTAL, {"queue_customer_id": "qc_1", "return_url": "javascript:x"}),
    ("portal: unknown field", PORTAL, {"queue_customer_id": "qc_1", "customer": "cus_other"}),
]


@pytest.mark.parametrize(("path", "body"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_body_is_a_422_and_changes_nothing(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn, path: str, body: Any
) -> None:
    response = await billing.post(path, json=body, headers=values.RAPTOR)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["request_id"]
    assert stripe_double.requests == []
    assert await nothing_stored(db)


@pytest.mark.parametrize("path", [SUBSCRIBE, CUSTOMERS, CHECKOUT, PORTAL])
async def test_a_body_that_is_not_json_is_a_422(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn, path: str
) -> None:
    headers = {**values.RAPTOR, "Content-Type": "application/json"}

    response = await billing.post(path, content=b"{not json", headers=headers)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert stripe_double.requests == []
    assert await nothing_stored(db)


async def test_validation_messages_do_not_echo_the_email(billing: httpx.AsyncClient) -> None:
    response = await billing.post(
        SUBSCRIBE, json=subscribe_body(email="secret.person@nodot"), headers=values.RAPTOR
    )

    assert response.status_code == 422
    assert "secret.person" not in response.text
