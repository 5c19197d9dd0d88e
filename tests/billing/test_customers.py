"""POST /api/v1/billing/customers: create-or-return, with and without Stripe."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from raxx_queue.simulator.double import StripeDouble
from tests.conftest import AppFactory
from tests.support import values
from tests.support.database import Conn
from tests.support.logs import CapturedLogs

from .support import EMAIL, NAME, audit_rows, calls, count, linked_customer, nothing_stored

URL = "/api/v1/billing/customers"


async def test_a_new_customer_gets_a_stripe_customer(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    body = {"queue_customer_id": "qc_new", "email": EMAIL, "name": NAME}

    response = await billing.post(URL, json=body, headers=values.RAPTOR)

    assert response.status_code == 201, response.text
    [customer] = stripe_double.customers
    [create] = stripe_double.requests
    assert (create.method, create.path) == ("POST", "/v1/customers")
    assert create.form == {
        "email": EMAIL,
        "name": NAME,
        "metadata": {"queue_customer_id": "qc_new"},
    }
    assert create.idempotency_key == "customer:qc_new"
    answer = response.json()
    assert answer["queue_customer_id"] == "qc_new"
    assert answer["stripe_customer_id"] == customer["id"]
    # Raptor's answer has no personal fields (Console's has: tests/api/test_personal_fields.py)
    assert set(answer) & {"billing_email", "billing_name"} == set()
    assert answer["subscription"]["plan_tier"] == "free"
    audit = await audit_rows(db)
    assert [(a["actor"], a["action"], a["stripe_object_id"]) for a in audit] == [
        ("raptor", "customer.create", customer["id"])
    ]
    assert audit[0]["summary"] == {"stripe_customer_id": customer["id"]}


async def test_an_existing_customer_is_returned_with_200(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    await linked_customer(db, stripe_double, "qc_old", "cus_old")

    response = await billing.post(
        URL,
        json={"queue_customer_id": "qc_old", "email": "other@example.org"},
        headers=values.CONSOLE,
    )

    assert response.status_code == 200
    assert response.json()["stripe_customer_id"] == "cus_old"
    assert response.json()["billing_email"] == EMAIL  # Stripe's, changed by its webhooks only
    assert stripe_double.requests == []
    assert await audit_rows(db) == []


async def test_create_twice_and_concurrently_makes_one_customer(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    body = {"queue_customer_id": "qc_twice", "email": EMAIL}

    statuses = [
        r.status_code
        for r in await asyncio.gather(
            *(billing.post(URL, json=body, headers=values.RAPTOR) for _ in range(5))
        )
    ]
    again = await billing.post(URL, json=body, headers=values.RAPTOR)

    assert sorted(statuses) == [200, 200, 200, 200, 201]
    assert again.status_code == 200
    assert len(stripe_double.customers) == 1
    assert {r.idempotency_key for r in calls(stripe_double, "POST", "/v1/customers")} == {
        "customer:qc_twice"
    }
    assert await count(db, "billing_customer") == 1
    assert [a["action"] for a in await audit_rows(db)] == ["customer.create"]


async def test_without_stripe_a_local_customer_is_linked_once_stripe_is_configured(
    billing_factory: AppFactory, stripe_double: StripeDouble, db: Conn
) -> None:
    body = {"queue_customer_id": "qc_local", "email": EMAIL}
    async with billing_factory(stripe_restricted_key=None) as client:
        local = await client.post(URL, json=body, headers=values.RAPTOR)
        local_again = await client.post(URL, json=body, headers=values.RAPTOR)
    async with billing_factory() as client:
        linked = await client.post(URL, json=body, headers=values.RAPTOR)

    assert local.status_code == 201
    assert local.json()["stripe_customer_id"] is None
    assert local_again.status_code == 200
    assert linked.status_code == 200
    [customer] = stripe_double.customers
    assert linked.json()["stripe_customer_id"] == customer["id"]
    assert [(a["action"], a["stripe_object_id"]) for a in await audit_rows(db)] == [
        ("customer.create", None),
        ("customer.link", customer["id"]),
    ]


async def test_a_webhook_row_for_the_stripe_customer_is_adopted(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    body = {"queue_customer_id": "qc_adopt", "email": EMAIL}
    stripe_double.fail_next("/v1/customers", "lost_response")  # created, answer lost ...
    stripe_double.fail_next("/v1/customers", "server_error", times=2)  # ... and Stripe is down
    failed = await billing.post(URL, json=body, headers=values.RAPTOR)
    [customer] = stripe_double.customers
    # customer.created arrived before the queue id was known to this row
    await db.execute(
        "INSERT INTO billing_customer (stripe_customer_id, billing_email) VALUES ($1, $2)",
        customer["id"],
        EMAIL,
    )

    response = await billing.post(URL, json=body, headers=values.RAPTOR)

    assert failed.status_code == 502
    assert response.status_code == 201
    rows = await db.fetch("SELECT queue_customer_id, stripe_customer_id FROM billing_customer")
    assert [tuple(r) for r in rows] == [("qc_adopt", customer["id"])]


async def test_stripe_failure_stores_nothing(
    billing: httpx.AsyncClient, stripe_double: StripeDouble, db: Conn
) -> None:
    stripe_double.fail_always("/v1/customers", "server_error")

    response = await billing.post(URL, json={"queue_customer_id": "qc_x"}, headers=values.RAPTOR)

    assert response.status_code == 502
    assert response.json()["error"]["code"] == "STRIPE_UNAVAILABLE"
    assert await nothing_stored(db)


@pytest.mark.parametrize("caller", ["raptor", "console"])
async def test_both_callers_may_create_and_are_the_audit_actor(
    billing: httpx.AsyncClient, db: Conn, caller: str
) -> None:
    headers = values.RAPTOR if caller == "raptor" else values.CONSOLE

    response = await billing.post(URL, json={"queue_customer_id": f"qc_{caller}"}, headers=headers)

    assert response.status_code == 201
    assert [a["actor"] for a in await audit_rows(db)] == [caller]


async def test_customer_creation_logs_no_email_or_name(
    billing: httpx.AsyncClient, captured_logs: CapturedLogs
) -> None:
    body = {"queue_customer_id": "qc_logs", "email": EMAIL, "name": NAME}

    await billing.post(URL, json=body, headers=values.RAPTOR)
    await billing.post(URL, json=body, headers=values.RAPTOR)

    captured_logs.assert_free_of([*values.SECRETS, EMAIL, NAME])
