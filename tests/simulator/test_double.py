"""The Stripe double, driven by the real stripe SDK's async client."""

from __future__ import annotations

import asyncio

import pytest
import stripe
import stripe.params

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.events import build_event
from raxx_queue.simulator.form import decode_form
from raxx_queue.simulator.objects import customer_obj, subscription_obj
from raxx_queue.simulator.transport import make_stripe_client

NOW = 1_760_000_000
PRICE_PRO = "price_pro_monthly"


@pytest.fixture
def double() -> StripeDouble:
    return StripeDouble(clock=lambda: NOW)


@pytest.fixture
def client(double: StripeDouble) -> stripe.StripeClient:
    return make_stripe_client(double)


async def _customer(client: stripe.StripeClient, queue_id: str = "qc_1") -> stripe.Customer:
    return await client.v1.customers.create_async(
        {"email": f"{queue_id}@example.com", "metadata": {"queue_customer_id": queue_id}}
    )


def test_form_decoding_nests_brackets_and_lists() -> None:
    decoded = decode_form(
        "metadata[queue_customer_id]=qc_1&items[0][price]=price_x&items[0][quantity]=2"
        "&expand[]=latest_invoice.confirmation_secret&expand[]=customer&created[gte]=5"
    )

    assert decoded == {
        "metadata": {"queue_customer_id": "qc_1"},
        "items": [{"price": "price_x", "quantity": "2"}],
        "expand": ["latest_invoice.confirmation_secret", "customer"],
        "created": {"gte": "5"},
    }


async def test_customer_create_is_recorded_with_params_and_key(
    client: stripe.StripeClient, double: StripeDouble
) -> None:
    customer = await client.v1.customers.create_async(
        {"email": "a@example.com", "name": "Ann", "metadata": {"queue_customer_id": "qc_1"}},
        {"idempotency_key": "customer:qc_1"},
    )

    assert customer.id.startswith("cus_")
    assert customer["metadata"]["queue_customer_id"] == "qc_1"
    assert customer.created == NOW
    [call] = double.requests_to("POST", "/v1/customers")
    assert call.form == {
        "email": "a@example.com",
        "name": "Ann",
        "metadata": {"queue_customer_id": "qc_1"},
    }
    assert call.idempotency_key == "customer:qc_1"
    assert call.stripe_version == stripe.api_version
    assert call.has_authorization
    assert "sk_test" not in repr(call)
    assert "authorization" not in call.headers


async def test_customer_retrieve_update_list_and_search(client: stripe.StripeClient) -> None:
    created = await _customer(client, "qc_1")
    await _customer(client, "qc_2")
    method = await client.v1.payment_methods.attach_async("pm_card_visa", {"customer": created.id})
    await client.v1.customers.update_async(
        created.id, {"invoice_settings": {"default_payment_method": method.id}}
    )

    fetched = await client.v1.customers.retrieve_async(created.id)
    by_email = await client.v1.customers.list_async({"email": "qc_1@example.com"})
    found = await client.v1.customers.search_async(
        {"query": "metadata['queue_customer_id']:'qc_2'"}
    )

    assert method.id.startswith("pm_")
    assert method.id != "pm_card_visa"
    assert fetched["invoice_settings"]["default_payment_method"] == method.id
    assert [c.id for c in by_email.data] == [created.id]
    assert [c["metadata"]["queue_customer_id"] for c in found.data] == ["qc_2"]


async def test_subscription_create_expands_confirmation_secret(
    client: stripe.StripeClient, double: StripeDouble
) -> None:
    customer = await _customer(client)

    subscription = await client.v1.subscriptions.create_async(
        {
            "customer": customer.id,
            "items": [{"price": PRICE_PRO}],
            "payment_behavior": "default_incomplete",
            "expand": ["latest_invoice.confirmation_secret"],
        }
    )

    assert subscription.id.startswith("sub_")
    assert subscription.status == "incomplete"
    [item] = subscription["items"].data
    assert item.id.startswith("si_")
    assert item.price.id == PRICE_PRO
    assert item.current_period_start == NOW
    assert item.current_period_end > NOW
    invoice = subscription["latest_invoice"]
    assert invoice.id.startswith("in_")
    assert invoice["parent"]["subscription_details"]["subscription"] == subscription.id
    assert invoice["confirmation_secret"]["client_secret"].startswith("pi_")
    [call] = double.requests_to("POST", "/v1/subscriptions")
    assert call.form["items"] == [{"price": PRICE_PRO}]
    assert call.form["expand"] == ["latest_invoice.confirmation_secret"]


async def test_subscription_payment_intent_reachable_the_older_way(
    client: stripe.StripeClient,
) -> None:
    customer = await _customer(client)
    expand = ["latest_invoice.payment_intent", "latest_invoice.confirmation_secret"]

    subscription = await client.v1.subscriptions.create_async(
        {
            "customer": customer.id,
            "items": [{"price": PRICE_PRO}],
            "payment_behavior": "default_incomplete",
            "expand": expand,
        }
    )
    plain = await client.v1.subscriptions.retrieve_async(subscription.id)

    invoice = subscription["latest_invoice"]
    secret = invoice["confirmation_secret"]["client_secret"]
    assert invoice["payment_intent"]["client_secret"] == secret
    assert plain.latest_invoice == invoice.id
    assert "confirmation_secret" not in (await client.v1.invoices.retrieve_async(invoice.id))


async def test_subscription_list_update_and_invoices(client: stripe.StripeClient) -> None:
    customer = await _customer(client)
    subscription = await client.v1.subscriptions.create_async(
        {"customer": customer.id, "items": [{"price": PRICE_PRO}], "trial_period_days": 7}
    )

    updated = await client.v1.subscriptions.update_async(
        subscription.id, {"cancel_at_period_end": True, "metadata": {"plan": "pro"}}
    )
    listed = await client.v1.subscriptions.list_async({"customer": customer.id, "status": "all"})
    invoices = await client.v1.invoices.list_async({"customer": customer.id})

    assert subscription.status == "trialing"
    assert updated.cancel_at_period_end is True
    assert updated.cancel_at == updated["items"].data[0].current_period_end
    assert updated.metadata["plan"] == "pro"
    assert [s.id for s in listed.data] == [subscription.id]
    assert [i.id for i in invoices.data] == [subscription.latest_invoice]


async def test_idempotent_replay_returns_first_answer_without_new_object(
    client: stripe.StripeClient, double: StripeDouble
) -> None:
    params: stripe.params.CustomerCreateParams = {
        "email": "a@example.com",
        "metadata": {"queue_customer_id": "qc_1"},
    }
    options: stripe.RequestOptions = {"idempotency_key": "customer:qc_1"}

    first = await client.v1.customers.create_async(params, options)
    second = await client.v1.customers.create_async(params, options)

    assert second.id == first.id
    assert len(double.customers) == 1
    assert [call.replayed for call in double.requests_to("POST", "/v1/customers")] == [False, True]


async def test_idempotency_key_reused_with_other_params_is_rejected(
    client: stripe.StripeClient, double: StripeDouble
) -> None:
    options: stripe.RequestOptions = {"idempotency_key": "customer:qc_1"}
    await client.v1.customers.create_async({"email": "a@example.com"}, options)

    with pytest.raises(stripe.IdempotencyError):
        await client.v1.customers.create_async({"email": "b@example.com"}, options)
    assert len(double.customers) == 1


async def test_concurrent_calls_with_one_key_create_one_object(
    client: stripe.StripeClient, double: StripeDouble
) -> None:
    options: stripe.RequestOptions = {"idempotency_key": "customer:qc_1"}
    create = client.v1.customers.create_async

    results = await asyncio.gather(*(create({"email": "a@example.com"}, options) for _ in range(8)))
    distinct = await asyncio.gather(*(create({"email": f"{n}@example.com"}) for n in range(8)))

    assert {customer.id for customer in results} == {results[0].id}
    assert len({customer.id for customer in distinct}) == 8
    assert len(double.customers) == 9


async def test_card_declined_raises_card_error_with_decline_code(
    client: stripe.StripeClient, double: StripeDouble
) -> None:
    customer = await _customer(client)
    double.fail_next("/v1/payment_methods", "card_declined", decline_code="insufficient_funds")

    with pytest.raises(stripe.CardError) as raised:
        await client.v1.payment_methods.attach_async("pm_card_visa", {"customer": customer.id})

    assert raised.value.http_status == 402
    assert raised.value.code == "card_declined"
    assert raised.value.error is not None
    assert raised.value.error.decline_code == "insufficient_funds"


async def test_server_error_raises_api_error_and_creates_nothing(
    client: stripe.StripeClient, double: StripeDouble
) -> None:
    double.fail_next("/v1/customers", "server_error")

    with pytest.raises(stripe.APIError) as raised:
        await _customer(client)

    assert raised.value.http_status == 500
    assert double.customers == []


async def test_sdk_retries_a_server_error_with_the_same_key(double: StripeDouble) -> None:
    client = make_stripe_client(double, max_network_retries=2)
    double.fail_next("/v1/customers", "server_error")

    customer = await _customer(client)

    calls = double.requests_to("POST", "/v1/customers")
    assert [call.status for call in calls] == [500, 200]
    assert calls[0].idempotency_key == calls[1].idempotency_key
    assert [c["id"] for c in double.customers] == [customer.id]


@pytest.mark.parametrize("kind", ["timeout", "connect_timeout"])
async def test_timeout_raises_api_connection_error(
    client: stripe.StripeClient, double: StripeDouble, kind: str
) -> None:
    double.fail_next("/v1/customers", kind)  # type: ignore[arg-type]

    with pytest.raises(stripe.APIConnectionError):
        await _customer(client)

    assert double.customers == []
    assert double.requests[0].failure == kind


async def test_lost_response_then_retry_replays_instead_of_duplicating(
    double: StripeDouble,
) -> None:
    client = make_stripe_client(double, max_network_retries=1)
    double.fail_next("/v1/customers", "lost_response")

    customer = await _customer(client)

    assert [c["id"] for c in double.customers] == [customer.id]
    assert [call.replayed for call in double.requests] == [False, True]


async def test_rate_limit_and_auth_failures(
    client: stripe.StripeClient, double: StripeDouble
) -> None:
    double.fail_next("/v1/customers", "rate_limit")
    double.fail_next("/v1/customers", "auth")

    with pytest.raises(stripe.RateLimitError):
        await _customer(client)
    with pytest.raises(stripe.AuthenticationError):
        await _customer(client)
    assert (await _customer(client)).id.startswith("cus_")


async def test_wrong_api_key_is_rejected() -> None:
    double = StripeDouble(api_key="sk_test_right")

    with pytest.raises(stripe.AuthenticationError):
        await _customer(make_stripe_client(double, api_key="sk_test_wrong"))
    assert (await _customer(make_stripe_client(double, api_key="sk_test_right"))).id


async def test_unknown_id_is_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as raised:
        await client.v1.subscriptions.retrieve_async("sub_missing")

    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"


async def test_fail_always_until_cleared(client: stripe.StripeClient, double: StripeDouble) -> None:
    double.fail_always("/v1/customers", "server_error", method="POST")
    for _ in range(3):
        with pytest.raises(stripe.APIError):
            await _customer(client)

    double.clear_failures()

    assert (await _customer(client)).id.startswith("cus_")


async def test_checkout_and_portal_sessions(
    client: stripe.StripeClient, double: StripeDouble
) -> None:
    customer = await _customer(client)

    checkout = await client.v1.checkout.sessions.create_async(
        {
            "mode": "subscription",
            "client_reference_id": "qc_1",
            "customer": customer.id,
            "line_items": [{"price": PRICE_PRO, "quantity": 1}],
            "success_url": "https://app.example.com/ok",
            "cancel_url": "https://app.example.com/cancel",
        }
    )
    portal = await client.v1.billing_portal.sessions.create_async(
        {"customer": customer.id, "return_url": "https://app.example.com/account"}
    )

    assert checkout.id.startswith("cs_test_")
    assert checkout.url == f"https://checkout.stripe.test/c/pay/{checkout.id}"
    assert (checkout.mode, checkout.client_reference_id) == ("subscription", "qc_1")
    assert portal.id.startswith("bps_")
    assert portal.url.startswith("https://")
    assert portal.return_url == "https://app.example.com/account"
    [call] = double.requests_to("POST", "/v1/checkout/sessions")
    assert call.form["line_items"] == [{"price": PRICE_PRO, "quantity": "1"}]


async def test_put_subscription_changes_what_stripe_says_now(
    client: stripe.StripeClient, double: StripeDouble
) -> None:
    double.put_customer(customer_obj("cus_put", "p@example.com", "P", "qc_put"))
    double.put_subscription(
        subscription_obj("sub_put", "cus_put", "past_due", PRICE_PRO, NOW + 86_400)
    )

    subscription = await client.v1.subscriptions.retrieve_async("sub_put")
    listed = await client.v1.subscriptions.list_async({"customer": "cus_put", "status": "all"})

    assert subscription.status == "past_due"
    assert [s.id for s in listed.data] == ["sub_put"]


async def test_events_list_filters_and_paginates(
    client: stripe.StripeClient, double: StripeDouble
) -> None:
    customer = customer_obj("cus_ev", "e@example.com", None, "qc_ev")
    for n in range(5):
        event = build_event("customer.updated", customer, event_id=f"evt_{n}", created=NOW + n)
        double.add_event(event, delivered=n % 2 == 0)
    double.add_event(build_event("customer.created", customer, event_id="evt_old", created=1))
    # Stripe keeps 30 days of events: the oldest it lists
    edge = NOW - 30 * 86_400
    double.add_event(build_event("customer.created", customer, event_id="evt_edge", created=edge))

    first = await client.v1.events.list_async(
        {"created": {"gte": NOW}, "delivery_success": False, "limit": 1}
    )
    second = await client.v1.events.list_async(
        {"created": {"gte": NOW}, "delivery_success": False, "starting_after": first.data[0].id}
    )
    page = await client.v1.events.list_async({"limit": 2})
    every = [event.id async for event in page.auto_paging_iter()]
    fetched = await client.v1.events.retrieve_async("evt_3")

    assert ([e.id for e in first.data], first.has_more) == (["evt_3"], True)
    assert ([e.id for e in second.data], second.has_more) == (["evt_1"], False)
    assert every == ["evt_4", "evt_3", "evt_2", "evt_1", "evt_0", "evt_edge"]
    assert fetched.type == "customer.updated"
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.events.retrieve_async("evt_old")
    assert double.requests_to("GET", "/v1/events")[0].query["created"] == {"gte": str(NOW)}
