"""POST /api/v1/billing/checkout and /portal: Stripe-hosted pages."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from raxx_queue.billing.idempotency import PORTAL_WINDOW_SECONDS
from raxx_queue.simulator.double import StripeDouble
from tests.conftest import AppFactory
from tests.support import seed, values
from tests.support.database import Conn
from tests.support.logs import CapturedLogs

from .support import EMAIL, audit_rows, linked_customer, nothing_stored, subscribed_customer

CHECKOUT = "/api/v1/billing/checkout"
PORTAL = "/api/v1/billing/portal"
SUCCESS = "https://app.raxx.test/billing/success"
CANCEL = "https://app.raxx.test/billing/cancel"


def checkout_body(queue_customer_id: str = "qc_1", **changes: str) -> dict[str, str]:
    return {"queue_customer_id": queue_customer_id, "email": EMAIL, "plan_tier": "pro", **changes}


# --- Checkout ----------------------------------------------------------------------------


async def test_checkout_for_a_new_customer_sends_its_email(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    response = await billing.post(CHECKOUT, json=checkout_body(), headers=values.RAPTOR)

    assert response.status_code == 201, response.text
    [session] = stripe_double.checkout_sessions
    assert response.json() == {"session_id": session["id"], "url": session["url"]}
    [call] = stripe_double.requests
    assert (call.method, call.path) == ("POST", "/v1/checkout/sessions")
    assert call.form == {
        "mode": "subscription",
        "line_items": [{"price": values.PRICE_PRO, "quantity": "1"}],
        "client_reference_id": "qc_1",
        "customer_email": EMAIL,
        "success_url": SUCCESS,
        "cancel_url": CANCEL,
        "metadata": {"queue_customer_id": "qc_1"},
        "subscription_data": {"metadata": {"queue_customer_id": "qc_1"}},
    }
    assert re.fullmatch(r"checkout:qc_1:pro:[0-9a-f]{16}", call.idempotency_key or "")
    audit = await audit_rows(db)
    assert [(a["actor"], a["action"], a["stripe_object_id"]) for a in audit] == [
        ("raptor", "checkout.session.create", session["id"])
    ]
    assert audit[0]["summary"] == {
        "stripe_customer_id": None,
        "plan_tier": "pro",
        "price_id": values.PRICE_PRO,
    }
    # Checkout creates the customer; its completion webhook links it
    assert await db.fetchval("SELECT count(*) FROM billing_customer") == 0


async def test_checkout_for_a_known_customer_names_it_and_takes_the_body_urls(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    await linked_customer(db, stripe_double, "qc_known", "cus_known")
    body = checkout_body(
        "qc_known",
        plan_tier="pro_plus",
        success_url="https://app.raxx.test/welcome?plan=pro_plus",
        cancel_url="https://app.raxx.test/pricing",
    )

    response = await billing.post(CHECKOUT, json=body, headers=values.RAPTOR)

    assert response.status_code == 201, response.text
    [call] = stripe_double.requests
    assert call.form["customer"] == "cus_known"
    assert "customer_email" not in call.form
    assert call.form["line_items"] == [{"price": values.PRICE_PRO_PLUS, "quantity": "1"}]
    assert call.form["success_url"] == "https://app.raxx.test/welcome?plan=pro_plus"
    assert call.form["cancel_url"] == "https://app.raxx.test/pricing"


async def test_the_same_checkout_twice_returns_the_same_session(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    first = await billing.post(CHECKOUT, json=checkout_body(), headers=values.RAPTOR)
    second = await billing.post(CHECKOUT, json=checkout_body(), headers=values.RAPTOR)
    other_tier = await billing.post(
        CHECKOUT, json=checkout_body(plan_tier="pro_plus"), headers=values.RAPTOR
    )

    assert first.json() == second.json()
    assert other_tier.json()["session_id"] != first.json()["session_id"]
    assert len(stripe_double.checkout_sessions) == 2
    assert len(await audit_rows(db)) == 2


async def test_checkout_with_a_current_subscription_answers_409(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    await subscribed_customer(db, stripe_double, "qc_paid", "cus_paid", "active")

    response = await billing.post(CHECKOUT, json=checkout_body("qc_paid"), headers=values.RAPTOR)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "SUBSCRIPTION_ALREADY_ACTIVE"
    assert stripe_double.requests == []


async def test_checkout_without_a_success_url_anywhere_is_a_422(
    billing_factory: AppFactory, stripe_double: StripeDouble, db: Conn
) -> None:
    async with billing_factory(checkout_success_url=None) as client:
        missing = await client.post(CHECKOUT, json=checkout_body(), headers=values.RAPTOR)
        given = await client.post(
            CHECKOUT, json=checkout_body(success_url=SUCCESS), headers=values.RAPTOR
        )

    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "VALIDATION_ERROR"
    assert "CHECKOUT_SUCCESS_URL" in missing.json()["error"]["message"]
    assert given.status_code == 201
    assert len(stripe_double.requests) == 1


async def test_staging_accepts_only_https_redirects(
    billing_factory: AppFactory, stripe_double: StripeDouble, db: Conn
) -> None:
    body = checkout_body(success_url="http://app.raxx.test/ok")
    async with billing_factory(queue_env="staging") as client:
        response = await client.post(CHECKOUT, json=body, headers=values.RAPTOR)

    assert response.status_code == 422
    assert response.json()["error"]["message"] == "success_url: must be an https URL"
    assert stripe_double.requests == []


async def test_checkout_stripe_failure_stores_nothing(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    stripe_double.fail_always("/v1/checkout/sessions", "timeout")

    response = await billing.post(CHECKOUT, json=checkout_body(), headers=values.RAPTOR)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "STRIPE_UNAVAILABLE"
    assert await nothing_stored(db)


# --- Customer Portal ---------------------------------------------------------------------


async def test_portal_session_for_a_linked_customer(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    await linked_customer(db, stripe_double, "qc_1", "cus_1")
    before = int(time.time()) // PORTAL_WINDOW_SECONDS

    response = await billing.post(PORTAL, json={"queue_customer_id": "qc_1"}, headers=values.RAPTOR)

    after = int(time.time()) // PORTAL_WINDOW_SECONDS
    assert response.status_code == 200, response.text
    [session] = stripe_double.portal_sessions
    assert response.json() == {"url": session["url"]}
    [call] = stripe_double.requests
    assert (call.method, call.path) == ("POST", "/v1/billing_portal/sessions")
    assert call.form == {"customer": "cus_1", "return_url": "https://app.raxx.test/billing"}
    match = re.fullmatch(r"portal:cus_1:[0-9a-f]{16}:(\d+)", call.idempotency_key or "")
    assert match
    assert before <= int(match[1]) <= after
    audit = await audit_rows(db)
    assert [(a["actor"], a["action"], a["stripe_object_id"]) for a in audit] == [
        ("raptor", "portal.session.create", session["id"])
    ]
    assert audit[0]["summary"] == {"stripe_customer_id": "cus_1"}


async def test_portal_return_url_from_the_body(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    await linked_customer(db, stripe_double, "qc_1", "cus_1")
    body = {"queue_customer_id": "qc_1", "return_url": "https://app.raxx.test/account"}

    response = await billing.post(PORTAL, json=body, headers=values.RAPTOR)

    assert response.status_code == 200
    assert stripe_double.requests[0].form["return_url"] == "https://app.raxx.test/account"


async def test_portal_without_any_return_url_leaves_it_to_the_portal_configuration(
    billing_factory: AppFactory, stripe_double: StripeDouble, db: Conn
) -> None:
    await linked_customer(db, stripe_double, "qc_1", "cus_1")
    async with billing_factory(portal_return_url=None) as client:
        response = await client.post(
            PORTAL, json={"queue_customer_id": "qc_1"}, headers=values.RAPTOR
        )

    assert response.status_code == 200
    assert stripe_double.requests[0].form == {"customer": "cus_1"}


@pytest.mark.parametrize("stripe_customer_id", [None, "deleted"])
async def test_portal_without_a_stripe_customer_is_a_404(
    billing: httpx.AsyncClient,
    stripe_double: StripeDouble,
    db: Conn,
    stripe_customer_id: str | None,
) -> None:
    if stripe_customer_id is None:
        await seed.customer(db, "qc_local")  # known to Queue only
    else:
        await linked_customer(db, stripe_double, "qc_local", "cus_deleted")
        await db.execute("UPDATE billing_customer SET deleted_at = now()")

    unknown = await billing.post(
        PORTAL, json={"queue_customer_id": "qc_nobody"}, headers=values.RAPTOR
    )
    local = await billing.post(
        PORTAL, json={"queue_customer_id": "qc_local"}, headers=values.RAPTOR
    )

    for response in (unknown, local):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "CUSTOMER_NOT_FOUND"
    assert stripe_double.requests == []
    assert await audit_rows(db) == []


# --- both --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [(CHECKOUT, checkout_body()), (PORTAL, {"queue_customer_id": "qc_1"})],
)
async def test_console_may_not_open_stripe_pages(
    billing: httpx.AsyncClient,
    stripe_double: StripeDouble,
    db: Conn,
    path: str,
    body: dict[str, str],
) -> None:
    await linked_customer(db, stripe_double, "qc_1", "cus_1")

    response = await billing.post(path, json=body, headers=values.CONSOLE)

    assert response.status_code == 403
    assert stripe_double.requests == []
    assert await audit_rows(db) == []


async def test_session_urls_and_emails_stay_out_of_the_logs(
    billing: httpx.AsyncClient,
    stripe_double: StripeDouble,
    db: Conn,
    captured_logs: CapturedLogs,
) -> None:
    await linked_customer(db, stripe_double, "qc_1", "cus_1")

    checkout = await billing.post(CHECKOUT, json=checkout_body("qc_2"), headers=values.RAPTOR)
    portal = await billing.post(PORTAL, json={"queue_customer_id": "qc_1"}, headers=values.RAPTOR)

    urls = [checkout.json()["url"], portal.json()["url"]]
    assert captured_logs.logged(route="/api/v1/billing/portal")
    captured_logs.assert_free_of([*values.SECRETS, EMAIL, *urls])


# --- Redirect hosts (finding 10) -----------------------------------------------------------

FOREIGN_REDIRECTS = [
    ("success_url", "https://evil.example/phish"),
    ("cancel_url", "https://evil.example/phish"),
    ("success_url", "https://app.raxx.test@evil.example/"),  # user info, host evil.example
    ("success_url", "https://app.raxx.test.evil.example/"),
    ("cancel_url", "https://raxx.test/"),  # a parent domain is another host
]


@pytest.mark.parametrize(("field", "url"), FOREIGN_REDIRECTS)
async def test_checkout_refuses_a_redirect_to_a_host_not_configured(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn, field: str, url: str
) -> None:
    """No open redirect through Stripe's pages: a 422 and nothing reaches Stripe."""
    response = await billing.post(
        CHECKOUT, json=checkout_body(**{field: url}), headers=values.RAPTOR
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == {
        "code": "VALIDATION_ERROR",
        "message": f"{field}: host not allowed (REDIRECT_ALLOWED_HOSTS)",
    }
    assert stripe_double.requests == []
    assert await nothing_stored(db)


async def test_portal_refuses_a_return_url_to_a_host_not_configured(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    await linked_customer(db, stripe_double, "qc_1", "cus_1")
    body = {"queue_customer_id": "qc_1", "return_url": "https://evil.example/"}
    response = await billing.post(PORTAL, json=body, headers=values.RAPTOR)
    assert response.status_code == 422
    assert "return_url: host not allowed" in response.json()["error"]["message"]
    assert not [r for r in stripe_double.requests if r.path.startswith("/v1/billing_portal")]


async def test_redirect_allowed_hosts_adds_hosts_beside_the_defaults(
    billing_factory: AppFactory, stripe_double: StripeDouble
) -> None:
    async with billing_factory(redirect_allowed_hosts="Shop.Raxx.test, raxx.test") as client:
        for url in ("https://shop.raxx.test/ok", "https://raxx.test/ok", SUCCESS):
            response = await client.post(
                CHECKOUT, json=checkout_body(success_url=url), headers=values.RAPTOR
            )
            assert response.status_code == 201, (url, response.text)
        foreign = await client.post(
            CHECKOUT, json=checkout_body(cancel_url="https://evil.example/"), headers=values.RAPTOR
        )
        assert foreign.status_code == 422
