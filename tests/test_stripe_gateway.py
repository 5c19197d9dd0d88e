"""The Stripe gateway over the double: wiring, retries, error mapping, the read methods."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import stripe

from raxx_queue.logs import configure_logging
from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.events import build_event
from raxx_queue.simulator.objects import customer_obj, subscription_obj
from raxx_queue.stripe_errors import (
    StripeCardError,
    StripeIdempotencyConflict,
    StripeInvalidRequest,
    StripeMisconfigured,
    StripeObjectMissing,
    StripeUnavailable,
)
from raxx_queue.stripe_gateway import (
    MAX_NETWORK_RETRIES,
    STRIPE_API_VERSION,
    StripeGateway,
    build_stripe_gateway,
)
from tests.conftest import make_settings
from tests.support import values
from tests.support.logs import CapturedLogs

NOW = 1_760_000_000


@pytest.fixture(autouse=True)
def instant_stripe_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK still retries; only its backoff between attempts is zeroed."""
    monkeypatch.setattr(stripe.HTTPClient, "INITIAL_DELAY", 0)
    monkeypatch.setattr(stripe.HTTPClient, "MAX_DELAY", 0)


@pytest.fixture
def double() -> StripeDouble:
    return StripeDouble(api_key=values.STRIPE_KEY, clock=lambda: NOW)


def _gateway(transport: httpx.AsyncBaseTransport, **overrides: Any) -> StripeGateway:
    settings = make_settings(None, **overrides)
    configure_logging(settings)  # as the app does: JSON lines through the redactor
    gateway = build_stripe_gateway(settings, transport)
    assert gateway is not None
    return gateway


@pytest.fixture
async def gateway(double: StripeDouble) -> AsyncIterator[StripeGateway]:
    gateway = _gateway(double.transport)
    yield gateway
    await gateway.aclose()


def _answering(status: int, error: dict[str, Any]) -> httpx.MockTransport:
    """A Stripe that answers every request with this error."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json={"error": error}, headers={"Request-Id": "req_scripted"})

    return httpx.MockTransport(handler)


async def _closing(gateway: StripeGateway, call: Callable[[StripeGateway], Any]) -> Any:
    try:
        return await call(gateway)
    finally:
        await gateway.aclose()


# --- wiring ------------------------------------------------------------------------------


def test_no_key_means_no_gateway() -> None:
    assert build_stripe_gateway(make_settings(None, stripe_restricted_key=None)) is None


@pytest.mark.parametrize(
    "keys",
    [
        {"stripe_restricted_key": values.STRIPE_KEY},
        {"stripe_restricted_key": None, "stripe_secret_key": values.STRIPE_KEY},
    ],
)
async def test_requests_carry_the_key_the_pinned_version_and_go_to_the_api_base(
    double: StripeDouble, keys: dict[str, Any]
) -> None:
    gateway = _gateway(double.transport, stripe_api_base="https://api.stripe.test/", **keys)

    customer = await _closing(
        gateway,
        lambda g: g.create_customer(
            queue_customer_id="qc_1", email=None, name=None, idempotency_key="customer:qc_1"
        ),
    )

    assert customer["metadata"] == {"queue_customer_id": "qc_1"}
    [call] = double.requests
    assert call.api_key_accepted
    assert call.headers["host"] == "api.stripe.test"
    assert call.path == "/v1/customers"
    assert call.stripe_version == STRIPE_API_VERSION
    assert call.form == {"metadata": {"queue_customer_id": "qc_1"}}


async def test_failures_are_retried_twice_with_the_same_key(
    gateway: StripeGateway, double: StripeDouble
) -> None:
    double.fail_always("/v1/customers", "server_error")

    with pytest.raises(StripeUnavailable) as raised:
        await gateway.create_customer(
            queue_customer_id="qc_1", email=None, name=None, idempotency_key="customer:qc_1"
        )

    assert (raised.value.status, raised.value.code) == (502, "STRIPE_UNAVAILABLE")
    calls = double.requests
    assert len(calls) == 1 + MAX_NETWORK_RETRIES
    assert {c.idempotency_key for c in calls} == {"customer:qc_1"}


async def test_one_failure_then_success_is_invisible(
    gateway: StripeGateway, double: StripeDouble
) -> None:
    double.fail_next("/v1/customers", "connect_timeout")

    customer = await gateway.create_customer(
        queue_customer_id="qc_1", email=None, name=None, idempotency_key="customer:qc_1"
    )

    assert [c["id"] for c in double.customers] == [customer["id"]]


# --- error mapping -----------------------------------------------------------------------


async def test_card_error_is_402_with_the_decline_code(
    gateway: StripeGateway, double: StripeDouble
) -> None:
    double.put_customer(customer_obj("cus_1", None, None, "qc_1"))
    double.fail_next("/v1/payment_methods", "card_declined", decline_code="incorrect_cvc")

    with pytest.raises(StripeCardError) as raised:
        await gateway.attach_payment_method(
            "pm_card_visa", customer_id="cus_1", idempotency_key="attach:cus_1:pm_card_visa"
        )

    error = raised.value
    assert (error.status, error.code, error.stripe_code) == (402, "CARD_DECLINED", "card_declined")
    assert error.message == "Your card's security code is incorrect. (decline_code: incorrect_cvc)"


async def test_a_missing_object_is_404(gateway: StripeGateway) -> None:
    with pytest.raises(StripeObjectMissing) as raised:
        await gateway.retrieve_subscription("sub_missing")

    assert (raised.value.status, raised.value.code) == (404, "STRIPE_OBJECT_MISSING")


async def test_rejected_caller_input_is_422_named_after_stripes_code() -> None:
    error = {
        "type": "invalid_request_error",
        "code": "email_invalid",
        "param": "email",
        "message": "Invalid email address: a@b.c",
    }
    gateway = _gateway(_answering(400, error))

    with pytest.raises(StripeInvalidRequest) as raised:
        await _closing(
            gateway,
            lambda g: g.create_customer(
                queue_customer_id="qc_1", email="a@b.c", name=None, idempotency_key="customer:qc_1"
            ),
        )

    assert (raised.value.status, raised.value.code) == (422, "EMAIL_INVALID")
    assert raised.value.message == "email: Invalid email address: a@b.c"


async def test_an_unknown_payment_method_is_the_callers_422_not_a_404() -> None:
    error = {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "message": "No such PaymentMethod: 'pm_typo'",
    }
    gateway = _gateway(_answering(404, error))

    with pytest.raises(StripeInvalidRequest) as raised:
        await _closing(
            gateway,
            lambda g: g.attach_payment_method(
                "pm_typo", customer_id="cus_1", idempotency_key="attach:cus_1:pm_typo"
            ),
        )

    assert (raised.value.status, raised.value.code) == (422, "RESOURCE_MISSING")
    assert raised.value.message == "No such PaymentMethod: 'pm_typo'"


async def test_a_request_stripe_rejects_for_our_part_is_400_and_logged(
    captured_logs: CapturedLogs,
) -> None:
    error = {
        "type": "invalid_request_error",
        "code": "resource_missing",
        "param": "items[0][price]",
        "message": "No such price: 'price_gone'",
    }
    gateway = _gateway(_answering(400, error))

    with pytest.raises(StripeInvalidRequest) as raised:
        await _closing(
            gateway,
            lambda g: g.create_subscription(
                customer_id="cus_1",
                price_id="price_gone",
                queue_customer_id="qc_1",
                idempotency_key="subscribe:qc_1:pro:pm_1",
            ),
        )

    assert (raised.value.status, raised.value.code) == (400, "STRIPE_REQUEST_REJECTED")
    [line] = [json.loads(x) for x in captured_logs.lines if "stripe_rejected_request" in x]
    assert line["level"] == "error"
    assert line["stripe_param"] == "items[0][price]"
    assert line["stripe_request_id"] == "req_scripted"
    assert line["operation"] == "subscriptions.create"


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (401, "Invalid API Key provided: rk_test_****cdef"),
        (
            403,
            "The provided key 'rk_test_****cdef' does not have the required permissions for "
            "this endpoint. Having the 'rak_customer_write' permission would allow this.",
        ),
    ],
)
async def test_rejected_credentials_are_502_with_an_operator_line_and_no_key(
    captured_logs: CapturedLogs, status: int, message: str
) -> None:
    gateway = _gateway(_answering(status, {"type": "invalid_request_error", "message": message}))

    with pytest.raises(StripeMisconfigured) as raised:
        await _closing(gateway, lambda g: g.retrieve_customer("cus_1"))

    assert (raised.value.status, raised.value.code) == (502, "STRIPE_MISCONFIGURED")
    [line] = [json.loads(x) for x in captured_logs.lines if "stripe_misconfigured" in x]
    assert line["level"] == "error"
    assert line["http_status"] == status
    assert "STRIPE_RESTRICTED_KEY" in line["hint"]
    assert line["stripe_message"] == message
    captured_logs.assert_free_of([values.STRIPE_KEY])


async def test_rate_limit_is_502_unavailable(gateway: StripeGateway, double: StripeDouble) -> None:
    double.fail_next("/v1/events", "rate_limit")

    with pytest.raises(StripeUnavailable) as raised:
        await gateway.list_events()

    assert raised.value.headers == {"Retry-After": "5"}


async def test_a_key_reused_with_other_params_is_409(gateway: StripeGateway) -> None:
    await gateway.create_customer(
        queue_customer_id="qc_1", email="a@example.com", name=None, idempotency_key="customer:qc_1"
    )

    with pytest.raises(StripeIdempotencyConflict) as raised:
        await gateway.create_customer(
            queue_customer_id="qc_1",
            email="b@example.com",
            name=None,
            idempotency_key="customer:qc_1",
        )

    assert (raised.value.status, raised.value.code) == (409, "IDEMPOTENCY_CONFLICT")


# --- the read methods others build on ----------------------------------------------------


async def test_customer_reads(gateway: StripeGateway, double: StripeDouble) -> None:
    double.put_customer(customer_obj("cus_1", "a@example.com", None, "qc_1", created=NOW))

    assert (await gateway.retrieve_customer("cus_1"))["email"] == "a@example.com"
    assert [c["id"] for c in await gateway.search_customers("qc_1")] == ["cus_1"]
    assert await gateway.search_customers("qc_2") == []


async def test_subscription_and_invoice_reads(gateway: StripeGateway, double: StripeDouble) -> None:
    double.put_customer(customer_obj("cus_1", None, None, "qc_1"))
    double.put_subscription(
        subscription_obj("sub_old", "cus_1", "canceled", "price_x", NOW, created=NOW - 100)
    )
    created = await gateway.create_subscription(
        customer_id="cus_1",
        price_id="price_x",
        queue_customer_id="qc_1",
        idempotency_key="subscribe:qc_1:pro:pm_1",
    )

    listed = await gateway.list_subscriptions("cus_1")
    fetched = await gateway.retrieve_subscription(created["id"])
    invoices = await gateway.list_invoices("cus_1", limit=5)
    invoice = await gateway.retrieve_invoice(invoices[0]["id"])

    assert [s["id"] for s in listed] == [created["id"], "sub_old"]
    assert double.requests_to("GET", "/v1/subscriptions")[0].query == {
        "customer": "cus_1",
        "status": "all",
        "limit": "100",
    }
    assert fetched["latest_invoice"] == created["latest_invoice"]["id"]
    assert created["latest_invoice"]["confirmation_secret"]["client_secret"].startswith("pi_")
    assert [i["id"] for i in invoices] == [fetched["latest_invoice"]]
    assert invoice["customer"] == "cus_1"


async def test_events_are_listed_a_page_at_a_time(
    gateway: StripeGateway, double: StripeDouble
) -> None:
    customer = customer_obj("cus_1", None, None, "qc_1")
    for n in range(3):
        event = build_event("customer.updated", customer, event_id=f"evt_{n}", created=NOW + n)
        double.add_event(event, delivered=n != 1)

    first = await gateway.list_events(created_gte=NOW, limit=2)
    rest = await gateway.list_events(created_gte=NOW, limit=2, starting_after=first.data[-1]["id"])
    undelivered = await gateway.list_events(delivery_success=False, types=["customer.updated"])
    one = await gateway.retrieve_event("evt_2")

    assert ([e["id"] for e in first.data], first.has_more) == (["evt_2", "evt_1"], True)
    assert ([e["id"] for e in rest.data], rest.has_more) == (["evt_0"], False)
    assert [e["id"] for e in undelivered.data] == ["evt_1"]
    assert one["type"] == "customer.updated"
