"""Console and Raptor reads over seeded rows."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from tests.support import seed, values
from tests.support.database import Conn


async def test_customer_with_current_subscription(client: httpx.AsyncClient, db: Conn) -> None:
    await seed.customer(db, "cust_1", stripe_customer_id="cus_1", email="a@example.com", name="Ann")
    await seed.subscription(db, "sub_old", "cus_1", status="canceled", plan_tier="pro")
    await seed.subscription(db, "sub_new", "cus_1", status="active", plan_tier="pro_plus")

    response = await client.get("/api/v1/billing/customers/cust_1", headers=values.CONSOLE)
    assert response.status_code == 200
    body = response.json()
    assert body["stripe_customer_id"] == "cus_1"
    assert body["billing_email"] == "a@example.com"
    assert body["subscription"]["stripe_subscription_id"] == "sub_new"
    assert body["subscription"]["plan_tier"] == "pro_plus"
    assert body["subscription"]["entitled"] is True


@pytest.mark.parametrize(
    ("status", "grace_days", "entitled"),
    [
        ("active", None, True),
        ("trialing", None, True),
        ("past_due", 3, True),
        ("past_due", -1, False),
        ("past_due", None, False),
        ("unpaid", None, False),
        ("canceled", None, False),
        ("incomplete", None, False),
        ("paused", None, False),
    ],
)
async def test_entitlement_rule(
    client: httpx.AsyncClient, db: Conn, status: str, grace_days: int | None, entitled: bool
) -> None:
    grace = seed.NOW + timedelta(days=grace_days) if grace_days is not None else None
    await seed.customer(db, "cust_e", stripe_customer_id="cus_e")
    await seed.subscription(db, "sub_e", "cus_e", status=status, plan_tier="pro", grace_until=grace)

    response = await client.get("/api/v1/billing/subscriptions/cust_e", headers=values.RAPTOR)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == status
    assert body["entitled"] is entitled
    assert body["subscribed_tier"] == "pro"
    assert body["plan_tier"] == ("pro" if entitled else "free")


async def test_customer_without_subscription_is_free(client: httpx.AsyncClient, db: Conn) -> None:
    await seed.customer(db, "cust_free")
    body = (
        await client.get("/api/v1/billing/subscriptions/cust_free", headers=values.RAPTOR)
    ).json()
    assert body["status"] == "none"
    assert body["plan_tier"] == "free"
    assert body["entitled"] is False


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/billing/customers/nobody",
        "/api/v1/billing/subscriptions/nobody",
        "/api/v1/billing/invoices/nobody",
    ],
)
async def test_unknown_customer_is_404(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path, headers=values.CONSOLE)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "CUSTOMER_NOT_FOUND"


@pytest.mark.parametrize(
    "bad_id",
    ["a" * 65, "semi;colon", "quote'", "dot.dot", "%2E%2E%2Fetc", "space%20id", "%00", "%C3%A9"],
)
@pytest.mark.parametrize("resource", ["customers", "subscriptions", "invoices"])
async def test_ids_outside_the_pattern_are_422(
    client: httpx.AsyncClient, db: Conn, resource: str, bad_id: str
) -> None:
    response = await client.get(f"/api/v1/billing/{resource}/{bad_id}", headers=values.CONSOLE)
    assert response.status_code in (404, 422)
    if response.status_code == 422:
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    count = await db.fetchval("SELECT count(*) FROM billing_customer")
    assert count == 0


async def test_pagination_visits_every_customer_once(client: httpx.AsyncClient, db: Conn) -> None:
    ids = [f"cust_{i:03d}" for i in range(53)]
    for i, queue_id in enumerate(ids):
        await seed.customer(db, queue_id, stripe_customer_id=f"cus_{i}")
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 10}
        if cursor:
            params["cursor"] = cursor
        body = (
            await client.get("/api/v1/billing/customers", params=params, headers=values.CONSOLE)
        ).json()
        seen += [c["queue_customer_id"] for c in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert pages == 6


async def test_list_filters(client: httpx.AsyncClient, db: Conn) -> None:
    await seed.customer(db, "c_active", stripe_customer_id="cus_a")
    await seed.subscription(db, "sub_a", "cus_a", status="active", plan_tier="pro_plus")
    await seed.customer(db, "c_pastdue", stripe_customer_id="cus_p")
    await seed.subscription(db, "sub_p", "cus_p", status="past_due", plan_tier="pro")
    await seed.customer(db, "c_none")

    async def ids(**params: str) -> list[str]:
        response = await client.get(
            "/api/v1/billing/customers", params=params, headers=values.CONSOLE
        )
        assert response.status_code == 200
        return [c["queue_customer_id"] for c in response.json()["data"]]

    assert await ids(status="active") == ["c_active"]
    assert await ids(status="past_due") == ["c_pastdue"]
    assert await ids(status="none") == ["c_none"]
    assert await ids(plan_tier="pro_plus") == ["c_active"]
    # past_due without grace is not entitled, so its usable tier is free
    assert await ids(plan_tier="free") == ["c_pastdue", "c_none"]
    assert await ids(status="active", plan_tier="pro") == []


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
        {"status": "bogus"},
        {"plan_tier": "enterprise"},
        {"cursor": "not-a-cursor"},
        {"cursor": "W10"},
    ],
)
async def test_bad_list_parameters_are_422(
    client: httpx.AsyncClient, db: Conn, params: dict[str, str]
) -> None:
    response = await client.get("/api/v1/billing/customers", params=params, headers=values.CONSOLE)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_invoices_newest_first_paginated(client: httpx.AsyncClient, db: Conn) -> None:
    await seed.customer(db, "cust_i", stripe_customer_id="cus_i")
    for i in range(7):
        await seed.invoice(db, f"in_{i}", "cus_i", seed.NOW - timedelta(days=30 * i))
    # two invoices in the same second are still ordered and never repeated
    await seed.invoice(db, "in_same_b", "cus_i", seed.NOW - timedelta(days=1000))
    await seed.invoice(db, "in_same_a", "cus_i", seed.NOW - timedelta(days=1000))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 4}
        if cursor:
            params["cursor"] = cursor
        body = (
            await client.get(
                "/api/v1/billing/invoices/cust_i", params=params, headers=values.RAPTOR
            )
        ).json()
        seen += [i["stripe_invoice_id"] for i in body["data"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [f"in_{i}" for i in range(7)] + ["in_same_b", "in_same_a"]


async def test_invoices_of_a_customer_without_stripe_id(
    client: httpx.AsyncClient, db: Conn
) -> None:
    await seed.customer(db, "cust_local")
    body = (await client.get("/api/v1/billing/invoices/cust_local", headers=values.RAPTOR)).json()
    assert body == {"data": [], "next_cursor": None}
