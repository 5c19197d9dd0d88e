"""POST /api/internal/billing/mirror-sync: the just-in-time row and re-pushes."""

from __future__ import annotations

from datetime import datetime

import pytest

from raxx_queue.mirror.rows import MIRROR_FIELDS
from tests.mirror.conftest import MirrorApp
from tests.mirror.steps import (
    EMAIL,
    NAME,
    accepted_version,
    add_customer,
    holds_versions,
    mirror_state,
    received,
)
from tests.peers.raptor_receiver import RaptorReceiver
from tests.support import seed, values
from tests.support.database import Conn

SYNC = "/api/internal/billing/mirror-sync"


def pushes_of(receiver: RaptorReceiver, customer: str, count: int) -> object:
    return lambda pushes: len(received(pushes, customer)) >= count


@pytest.mark.parametrize("caller", [values.RAPTOR, values.CONSOLE], ids=["raptor", "console"])
async def test_sync_returns_the_row_at_once_and_pushes_it_again(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver, caller: dict[str, str]
) -> None:
    await add_customer(db, "cust_1", plan_tier="pro_plus")
    async with mirror_app() as client:
        await receiver.await_for(accepted_version("cust_1", 1))
        response = await client.post(SYNC, json={"queue_customer_id": "cust_1"}, headers=caller)
        assert response.status_code == 200
        row = response.json()
        assert set(row) == set(MIRROR_FIELDS)
        assert row["queue_customer_id"] == "cust_1"
        assert (row["plan_tier"], row["status"], row["entitled"], row["version"]) == (
            "pro_plus",
            "active",
            True,
            1,
        )
        state = await mirror_state(db, "cust_1")
        assert datetime.fromisoformat(row["updated_at"]) == state["updated_at"]
        # Raptor already holds version 1; it is sent again and Raptor ignores it
        await receiver.await_for(pushes_of(receiver, "cust_1", 2))
    assert received(receiver.pushes, "cust_1") == [1, 1]
    assert EMAIL not in response.text
    assert NAME not in response.text


async def test_a_customer_without_a_mirror_row_gets_one_computed(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    await add_customer(db, "cust_new", plan_tier="pro", mirror=False)
    await seed.customer(db, "cust_free")  # never subscribed, no Stripe customer
    async with mirror_app() as client:
        response = await client.post(
            SYNC, json={"queue_customer_id": "cust_new"}, headers=values.RAPTOR
        )
        assert response.status_code == 200
        assert response.json()["plan_tier"] == "pro"
        assert response.json()["version"] == 1
        free = await client.post(
            SYNC, json={"queue_customer_id": "cust_free"}, headers=values.RAPTOR
        )
        assert free.status_code == 200
        assert (free.json()["plan_tier"], free.json()["status"], free.json()["entitled"]) == (
            "free",
            "none",
            False,
        )
        await receiver.await_for(holds_versions({"cust_new": 1, "cust_free": 1}))
    assert receiver.rows["cust_new"]["entitled"] is True


async def test_sync_all_requeues_every_row(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    customers = ["cust_a", "cust_b", "cust_c"]
    for customer in customers:
        await add_customer(db, customer)
    async with mirror_app() as client:
        await receiver.await_for(holds_versions(dict.fromkeys(customers, 1)))
        response = await client.post(SYNC, json={"all": True}, headers=values.CONSOLE)
        assert response.status_code == 200
        assert response.json() == {"queued": 3}
        await receiver.await_for(
            lambda pushes: all(len(received(pushes, c)) == 2 for c in customers)
        )


async def test_sync_works_without_a_dispatcher(db: Conn, app_factory: object) -> None:
    await add_customer(db, "cust_1")
    async with app_factory() as client:  # type: ignore[operator]
        response = await client.post(
            SYNC, json={"queue_customer_id": "cust_1"}, headers=values.RAPTOR
        )
    assert response.status_code == 200
    state = await mirror_state(db, "cust_1")
    assert state["version"] > state["pushed_version"]  # waits for a dispatcher


async def test_unknown_customer_is_404(db: Conn, mirror_app: MirrorApp) -> None:
    async with mirror_app() as client:
        response = await client.post(
            SYNC, json={"queue_customer_id": "nobody"}, headers=values.RAPTOR
        )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "CUSTOMER_NOT_FOUND"
    assert await db.fetchval("SELECT count(*) FROM billing_subscription_mirror") == 0


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"all": False},
        {"all": True, "queue_customer_id": "cust_1"},
        {"queue_customer_id": "not valid!"},
        {"queue_customer_id": ""},
        {"queue_customer_id": "x" * 65},
        {"queue_customer_id": 7},
        {"all": "yes please"},
        {"queue_customer_id": "cust_1", "force": True},
        [],
    ],
)
async def test_a_body_that_is_not_one_customer_or_all_is_422(
    mirror_app: MirrorApp, body: object
) -> None:
    async with mirror_app() as client:
        response = await client.post(SYNC, json=body, headers=values.CONSOLE)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


async def test_sync_needs_a_service_token(mirror_app: MirrorApp) -> None:
    async with mirror_app() as client:
        response = await client.post(SYNC, json={"all": True})
        wrong = await client.post(SYNC, json={"all": True}, headers={"Authorization": "Bearer x"})
        malformed = await client.post(SYNC, content=b"{", headers={})
    assert response.status_code == wrong.status_code == malformed.status_code == 401
    assert response.json()["error"]["code"] == "UNAUTHENTICATED"


async def test_sync_is_behind_the_billing_kill_switch(mirror_app: MirrorApp) -> None:
    async with mirror_app(flag_queue_billing=False) as client:
        response = await client.post(SYNC, json={"all": True}, headers=values.CONSOLE)
    assert response.status_code == 503
    assert "retry-after" in response.headers
