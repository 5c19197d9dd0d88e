"""POST /api/v1/billing/subscribe against the Stripe double: requests, rows, failures."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.stripe_gateway import STRIPE_API_VERSION
from tests.conftest import AppFactory
from tests.support import values
from tests.support.database import Conn
from tests.support.logs import CapturedLogs

from .support import (
    CARD,
    EMAIL,
    NAME,
    audit_rows,
    calls,
    count,
    linked_customer,
    nothing_stored,
    subscribe_body,
    subscribed_customer,
)

URL = "/api/v1/billing/subscribe"
EXPAND = ["latest_invoice.confirmation_secret", "pending_setup_intent"]


async def test_new_customer_subscribes_with_exactly_these_stripe_calls(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    headers = {**values.RAPTOR, "X-Request-ID": "req-subscribe-1"}

    response = await billing.post(URL, json=subscribe_body(), headers=headers)

    assert response.status_code == 201, response.text
    body = response.json()
    [customer] = stripe_double.customers
    [subscription] = stripe_double.subscriptions
    cus, sub = customer["id"], subscription["id"]
    assert body["subscription_id"] == sub
    assert body["status"] == "incomplete"
    assert body["client_secret"].startswith("pi_")
    assert "_secret_" in body["client_secret"]

    create, attach, default, subscribe = stripe_double.requests
    assert (create.method, create.path) == ("POST", "/v1/customers")
    assert create.form == {"email": EMAIL, "name": NAME, "metadata": {"queue_customer_id": "qc_1"}}
    assert create.idempotency_key == "customer:qc_1"
    assert (attach.method, attach.path) == ("POST", f"/v1/payment_methods/{CARD}/attach")
    assert attach.form == {"customer": cus}
    assert attach.idempotency_key == f"attach:{cus}:{CARD}"
    method_id = customer["invoice_settings"]["default_payment_method"]
    assert method_id.startswith("pm_")
    assert (default.method, default.path) == ("POST", f"/v1/customers/{cus}")
    assert default.form == {"invoice_settings": {"default_payment_method": method_id}}
    assert default.idempotency_key == f"default-payment-method:{cus}:{method_id}"
    assert (subscribe.method, subscribe.path) == ("POST", "/v1/subscriptions")
    assert subscribe.form == {
        "customer": cus,
        "items": [{"price": values.PRICE_PRO}],
        "payment_behavior": "default_incomplete",
        "expand": EXPAND,
        "metadata": {"queue_customer_id": "qc_1"},
    }
    assert subscribe.idempotency_key == f"subscribe:qc_1:pro:{CARD}"
    assert {r.stripe_version for r in stripe_double.requests} == {STRIPE_API_VERSION}
    assert all(r.api_key_accepted for r in stripe_double.requests)

    row = await db.fetchrow("SELECT * FROM billing_customer")
    assert (row["queue_customer_id"], row["stripe_customer_id"]) == ("qc_1", cus)
    assert (row["billing_email"], row["billing_name"]) == (EMAIL, NAME)
    stored = await db.fetchrow("SELECT * FROM billing_subscription")
    assert (stored["stripe_subscription_id"], stored["stripe_customer_id"]) == (sub, cus)
    assert (stored["status"], stored["plan_tier"]) == ("incomplete", "pro")
    assert stored["price_id"] == values.PRICE_PRO
    assert int(stored["source_event_created_at"].timestamp()) == subscription["created"]
    period_end = subscription["items"]["data"][0]["current_period_end"]
    assert int(stored["current_period_end"].timestamp()) == period_end
    mirror = await db.fetchrow("SELECT * FROM billing_subscription_mirror")
    assert (mirror["status"], mirror["plan_tier"], mirror["entitled"]) == (
        "incomplete",
        "free",
        False,
    )

    audit = await audit_rows(db)
    assert [(a["actor"], a["action"], a["stripe_object_id"]) for a in audit] == [
        ("raptor", "customer.create", cus),
        ("raptor", "subscription.create", sub),
    ]
    assert {a["request_id"] for a in audit} == {"req-subscribe-1"}
    assert audit[1]["summary"] == {
        "stripe_customer_id": cus,
        "plan_tier": "pro",
        "price_id": values.PRICE_PRO,
        "status": "incomplete",
        "stored": "inserted",
    }
    assert EMAIL not in str(audit)
    # the incomplete subscription is the customer's first access state: audited as its caller
    access = [a for a in await audit_rows(db, with_access=True) if a["action"] == "access.changed"]
    assert [(a["actor"], a["request_id"], a["summary"]["access"]["rule"]) for a in access] == [
        ("raptor", "req-subscribe-1", "incomplete")
    ]


async def test_linked_customer_is_not_created_again(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    await linked_customer(db, stripe_double, "qc_known", "cus_known")

    response = await billing.post(
        URL, json=subscribe_body("qc_known", plan_tier="pro_plus"), headers=values.RAPTOR
    )

    assert response.status_code == 201, response.text
    assert calls(stripe_double, "POST", "/v1/customers") == []
    [subscribe] = stripe_double.requests_to("POST", "/v1/subscriptions")
    assert subscribe.form["customer"] == "cus_known"
    assert subscribe.form["items"] == [{"price": values.PRICE_PRO_PLUS}]
    assert subscribe.idempotency_key == f"subscribe:qc_known:pro_plus:{CARD}"
    tier = await db.fetchval("SELECT plan_tier FROM billing_subscription")
    assert tier == "pro_plus"
    assert [a["action"] for a in await audit_rows(db)] == ["subscription.create"]


async def test_the_same_subscribe_twice_returns_the_same_subscription(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    first = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)
    second = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)

    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert len(stripe_double.customers) == 1
    assert len(stripe_double.subscriptions) == 1
    # the second attempt knows the customer and replays every write by its key
    assert len(calls(stripe_double, "POST", "/v1/customers")) == 1
    assert [r.replayed for r in stripe_double.requests[4:]] == [True, True, True]
    assert await count(db, "billing_customer") == 1
    assert await count(db, "billing_subscription") == 1
    assert [a["action"] for a in await audit_rows(db)] == ["customer.create", "subscription.create"]


async def test_ten_concurrent_subscribes_make_one_customer_and_one_subscription(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    responses = await asyncio.gather(
        *(billing.post(URL, json=subscribe_body(), headers=values.RAPTOR) for _ in range(10))
    )

    assert [r.status_code for r in responses] == [201] * 10
    assert len({r.json()["subscription_id"] for r in responses}) == 1
    assert len({r.json()["client_secret"] for r in responses}) == 1
    assert len(stripe_double.customers) == 1
    assert len(stripe_double.subscriptions) == 1
    keys = {r.idempotency_key for r in stripe_double.requests_to("POST", "/v1/subscriptions")}
    assert keys == {f"subscribe:qc_1:pro:{CARD}"}
    assert await count(db, "billing_customer") == 1
    assert await count(db, "billing_subscription") == 1
    assert [a["action"] for a in await audit_rows(db)] == ["customer.create", "subscription.create"]
    assert await db.fetchval("SELECT version FROM billing_subscription_mirror") == 1


@pytest.mark.parametrize("status", ["active", "trialing", "past_due"])
async def test_a_current_subscription_answers_409(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn, status: str
) -> None:
    sub = await subscribed_customer(db, stripe_double, "qc_paid", "cus_paid", status)

    response = await billing.post(URL, json=subscribe_body("qc_paid"), headers=values.RAPTOR)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "SUBSCRIPTION_ALREADY_ACTIVE"
    assert sub in response.json()["error"]["message"]
    assert stripe_double.requests == []
    assert await audit_rows(db) == []


@pytest.mark.parametrize("status", ["incomplete", "incomplete_expired", "canceled", "unpaid"])
async def test_an_ended_or_unpaid_subscription_does_not_block(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn, status: str
) -> None:
    await subscribed_customer(db, stripe_double, "qc_old", "cus_old", status)

    response = await billing.post(URL, json=subscribe_body("qc_old"), headers=values.RAPTOR)

    assert response.status_code == 201, response.text
    assert await count(db, "billing_subscription") == 2


async def test_card_declined_answers_402_with_the_decline_code_and_stores_nothing(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    stripe_double.fail_next("/v1/payment_methods", "card_declined", decline_code="expired_card")

    response = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)

    assert response.status_code == 402
    error = response.json()["error"]
    assert error["code"] == "CARD_DECLINED"
    assert "expired_card" in error["message"]
    assert stripe_double.requests_to("POST", "/v1/subscriptions") == []
    assert await nothing_stored(db)

    # Stripe keeps the decline for its key; the client sends the new card it collected
    same_card = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)
    new_card = subscribe_body(payment_method_id="pm_card_mastercard")
    retry = await billing.post(URL, json=new_card, headers=values.RAPTOR)

    assert same_card.status_code == 402
    assert retry.status_code == 201
    # the customer the failed attempts created is replayed, not duplicated
    assert len(stripe_double.customers) == 1
    creates = calls(stripe_double, "POST", "/v1/customers")
    assert [r.replayed for r in creates] == [False, True, True]
    assert await count(db, "billing_customer") == 1


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/v1/subscriptions", "server_error"),
        ("/v1/subscriptions", "timeout"),
        ("/v1/customers", "connect_timeout"),
        ("/v1/payment_methods", "rate_limit"),
    ],
)
async def test_stripe_unavailable_answers_502_and_stores_nothing(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn, path: str, kind: str
) -> None:
    stripe_double.fail_always(path, kind, method="POST")  # type: ignore[arg-type]

    response = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "STRIPE_UNAVAILABLE"
    assert response.headers["retry-after"] == "5"
    failed = stripe_double.requests_to("POST", path)
    if kind != "rate_limit":  # the SDK retries network errors and 5xx, not 429
        assert len(failed) == 3
        assert len({r.idempotency_key for r in failed}) == 1
    assert stripe_double.subscriptions == []
    assert await nothing_stored(db)


async def test_a_lost_answer_is_retried_and_replayed_not_duplicated(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    stripe_double.fail_next("/v1/subscriptions", "lost_response")

    response = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)

    assert response.status_code == 201
    assert [r.replayed for r in stripe_double.requests_to("POST", "/v1/subscriptions")] == [
        False,
        True,
    ]
    assert len(stripe_double.subscriptions) == 1
    assert await count(db, "billing_subscription") == 1


async def test_a_newer_webhook_state_is_not_overwritten_by_a_replay(
    billing: httpx.AsyncClient, db: Conn
) -> None:
    first = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)
    # hours later the unpaid subscription expired and its webhook stored that
    await db.execute(
        "UPDATE billing_subscription SET status = 'incomplete_expired',"
        " source_event_created_at = source_event_created_at + interval '23 hours'"
    )

    replay = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)

    # Stripe replays its first (incomplete) answer; the newer row stays
    assert replay.json() == first.json()
    assert await db.fetchval("SELECT status FROM billing_subscription") == "incomplete_expired"
    assert await db.fetchval("SELECT status FROM billing_subscription_mirror") == (
        "incomplete_expired"
    )


async def test_replayed_create_keeps_a_same_second_webhook_row(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    first = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)
    # a webhook of the same second wrote a state the create answer does not know
    await db.execute("UPDATE billing_subscription SET cancel_at_period_end = true")

    again = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)

    assert again.json() == first.json()
    assert await db.fetchval("SELECT cancel_at_period_end FROM billing_subscription") is True


async def test_a_deleted_stripe_customer_is_replaced_under_its_own_key(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    await linked_customer(db, stripe_double, "qc_back", "cus_gone")
    await db.execute("UPDATE billing_customer SET deleted_at = now()")

    response = await billing.post(URL, json=subscribe_body("qc_back"), headers=values.RAPTOR)

    assert response.status_code == 201, response.text
    [create] = calls(stripe_double, "POST", "/v1/customers")
    assert create.idempotency_key == "customer:qc_back:replaces:cus_gone"
    row = await db.fetchrow("SELECT stripe_customer_id, deleted_at FROM billing_customer")
    assert row["stripe_customer_id"] not in (None, "cus_gone")
    assert row["deleted_at"] is None
    assert [a["action"] for a in await audit_rows(db)] == ["customer.link", "subscription.create"]


async def test_other_details_after_a_failed_attempt_reuse_its_stripe_customer(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    stripe_double.fail_next("/v1/payment_methods", "card_declined")
    declined = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)
    assert declined.status_code == 402

    other = subscribe_body(email="jenny@example.org", name=None, payment_method_id="pm_card_mc")
    response = await billing.post(URL, json=other, headers=values.RAPTOR)

    assert response.status_code == 201, response.text
    [customer] = stripe_double.customers  # found by metadata, not created twice
    assert stripe_double.requests_to("GET", "/v1/customers/search")
    row = await db.fetchrow("SELECT stripe_customer_id, billing_email FROM billing_customer")
    assert (row["stripe_customer_id"], row["billing_email"]) == (customer["id"], EMAIL)


async def test_no_price_for_the_tier_answers_503_without_calling_stripe(
    billing_factory: AppFactory, stripe_double: StripeDouble, db: Conn
) -> None:
    async with billing_factory(stripe_price_id_pro_plus=None) as client:
        response = await client.post(
            URL, json=subscribe_body(plan_tier="pro_plus"), headers=values.RAPTOR
        )

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "PLAN_NOT_CONFIGURED"
    assert "STRIPE_PRICE_ID_PRO_PLUS" in response.json()["error"]["message"]
    assert stripe_double.requests == []


async def test_no_stripe_key_answers_503(billing_factory: AppFactory, db: Conn) -> None:
    async with billing_factory(stripe_restricted_key=None) as client:
        response = await client.post(URL, json=subscribe_body(), headers=values.RAPTOR)

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "STRIPE_NOT_CONFIGURED"
    assert await nothing_stored(db)


async def test_rejected_credentials_answer_502_with_an_operator_log_line(
    billing: httpx.AsyncClient,
    stripe_double: StripeDouble,
    db: Conn,
    captured_logs: CapturedLogs,
) -> None:
    stripe_double.fail_next("/v1/customers", "auth")

    response = await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "STRIPE_MISCONFIGURED"
    assert any("stripe_misconfigured" in line for line in captured_logs.lines)
    assert any("STRIPE_RESTRICTED_KEY" in line for line in captured_logs.lines)
    captured_logs.assert_free_of([values.STRIPE_KEY])
    assert await nothing_stored(db)


async def test_console_may_not_subscribe(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    response = await billing.post(URL, json=subscribe_body(), headers=values.CONSOLE)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert stripe_double.requests == []
    assert await nothing_stored(db)


async def test_subscribe_logs_no_email_name_key_token_or_client_secret(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, captured_logs: CapturedLogs
) -> None:
    stripe_double.fail_next("/v1/payment_methods", "card_declined")
    await billing.post(URL, json=subscribe_body(), headers=values.RAPTOR)
    new_card = subscribe_body(payment_method_id="pm_card_mastercard")
    response = await billing.post(URL, json=new_card, headers=values.RAPTOR)
    secret = response.json()["client_secret"]

    assert secret
    assert captured_logs.logged(route="/api/v1/billing/subscribe")
    captured_logs.assert_free_of([*values.SECRETS, EMAIL, NAME, secret])
