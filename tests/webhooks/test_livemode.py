"""An event of the other Stripe mode is recorded as ignored and applies nothing
(finding 12): test-mode events reaching a live deployment, or the reverse. The mode of
the deployment is its Stripe key's."""

from __future__ import annotations

from typing import Any

import httpx

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.events import build_event, subscription_obj
from raxx_queue.simulator.thin import thin_for_snapshot
from tests.conftest import AppFactory
from tests.support import values
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.webhooks import PERIOD_END, T0, deliver

from .test_thin_events import post_thin

# a made-up live-mode key: only its `rk_live_` prefix matters here
LIVE_KEY = "rk_live_" + "not-a-real-key"


def _subscription_event(*, livemode: bool) -> dict[str, Any]:
    obj = subscription_obj(
        "sub_1",
        "cus_1",
        "active",
        values.PRICE_PRO,
        PERIOD_END,
        metadata={"queue_customer_id": "cust_1"},
        created=T0,
    )
    return build_event("customer.subscription.created", obj, created=T0, livemode=livemode)


async def _recorded(db: Conn) -> list[dict[str, Any]]:
    rows = await db.fetch("SELECT event_id, outcome, livemode FROM processed_stripe_events")
    return [dict(r) for r in rows]


async def _nothing_applied(db: Conn) -> bool:
    counts = [
        await db.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
        for table in ("billing_subscription", "billing_action_log", "billing_subscription_mirror")
    ]
    return counts == [0, 0, 0]


async def _ignored_then(client: httpx.AsyncClient, db: Conn, event: dict[str, Any]) -> None:
    answer = await deliver(client, event)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "ignored"
    assert await _recorded(db) == [
        {"event_id": event["id"], "outcome": "ignored", "livemode": event["livemode"]}
    ]
    assert await _nothing_applied(db)


async def test_a_live_event_reaching_a_test_deployment_is_recorded_not_applied(
    client: httpx.AsyncClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    await _ignored_then(client, db, _subscription_event(livemode=True))
    assert captured_logs.logged(event="webhook_other_mode_ignored")


async def test_a_test_event_reaching_a_live_deployment_is_recorded_not_applied(
    app_factory: AppFactory, db: Conn
) -> None:
    async with app_factory(stripe_restricted_key=LIVE_KEY) as client:
        await _ignored_then(client, db, _subscription_event(livemode=False))
        live = _subscription_event(livemode=True)
        applied = await deliver(client, live)
        assert applied.json()["outcome"] == "applied"
    assert await db.fetchval("SELECT status FROM billing_subscription") == "active"


async def test_a_retry_of_an_ignored_event_stays_a_duplicate(
    client: httpx.AsyncClient, db: Conn
) -> None:
    event = _subscription_event(livemode=True)
    await deliver(client, event)
    again = await deliver(client, event)
    assert again.json()["outcome"] == "duplicate"
    assert await _nothing_applied(db)


async def test_a_thin_notification_of_the_other_mode_is_recorded_and_nothing_is_read(
    client: httpx.AsyncClient, db: Conn, stripe_double: StripeDouble
) -> None:
    notification, _full = thin_for_snapshot(_subscription_event(livemode=True))
    notification["livemode"] = True
    response = await post_thin(client, notification)
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "ignored"
    assert await _recorded(db) == [
        {"event_id": notification["id"], "outcome": "ignored", "livemode": True}
    ]
    assert [r for r in stripe_double.requests if r.method == "GET"] == []
    assert await _nothing_applied(db)
