"""Property tests of the access policy: drawn stories of status changes, pause shapes,
failed and paid invoices, disputes, time passing and deletion, each told three times at
once (webhook, replay, catch-up) and judged after every step against the raw facts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, note, settings

from raxx_queue.plans import price_tiers
from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.objects import customer_obj
from raxx_queue.webhooks.pipeline import EventContext, apply_stripe_event
from raxx_queue.webhooks.replay import replay_events
from tests.conftest import AppClient
from tests.support import values
from tests.support.database import Conn
from tests.support.webhooks import T0, customer_event, deliver_ok, subscription_event
from tests.webhooks.access_steps import read, with_pause
from tests.webhooks.access_stories import (
    Leg,
    Op,
    basis,
    mirror_row,
    stories,
    time_passes,
)

ENTITLING = {"active", "trialing", "grace"}
# several requests per step: a few dozen stories keep the file under a minute
STORIES = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
COUNTS: dict[str, int] = {"stories": 0, "steps": 0, "reconciled": 0}
REACHED: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_counts() -> Iterator[None]:
    """Prints what the properties covered (quoted by the issue's closing note)."""
    yield
    print(f"\naccess properties: {COUNTS}; steps by access/reason reached: {REACHED}")


def _judge(facts: dict[str, Any], body: dict[str, Any]) -> None:
    """The invariants, stated on the raw facts rather than on the policy's own table."""
    now = body["_now"]
    access, entitled = body["access"], body["entitled"]
    assert entitled == (access in ENTITLING)
    assert body["plan_tier"] == ("pro" if entitled else "free")
    if entitled:
        paid_or_trial = facts["status"] in ("active", "trialing") and (
            facts["pause_behavior"] is None or facts["pause_paid_through"] > now
        )
        in_grace = facts["status"] == "past_due" and (
            facts["grace_until"] is not None and facts["grace_until"] > now
        )
        assert paid_or_trial or in_grace, (facts, body)
        assert not facts["disputed"], facts
        assert not facts["deleted"], facts
    healthy = (
        facts["status"] == "active"
        and facts["payment_failure_count"] == 0
        and facts["pause_behavior"] is None
        and not facts["disputed"]
        and not facts["deleted"]
    )
    if healthy:
        assert access == "active", f"{facts} {body}"
    if access == "suspended":
        assert body["access_reason"] in (
            "payment_failed",
            "unpaid",
            "paused",
            "collection_paused",
            "dispute",
        )


async def _now(db: Conn) -> Any:
    return await db.fetchval("SELECT now()")


@STORIES
@given(story=stories)
# found by this property: a grace window that lapsed under paused collection, then the
# paid period ended too; the mirror must follow the reason's change with no event
@example(
    story=[
        ("status", "active", None),
        ("pay",),
        ("status", "active", "void"),
        ("fail", 1),
        ("fail", 1),
        ("time passes",),
    ]
)
async def test_access_follows_the_facts_by_every_path(
    client: AppClient, db: Conn, story: list[Op]
) -> None:
    services = client.services
    assert services.stripe is not None
    tiers = price_tiers(services.settings)
    replay = EventContext(tiers, grace_days=7, source="replay", actor="system")
    catchup = EventContext(tiers, grace_days=7, source="catchup", actor="catchup")
    webhook, replayed, caught_up = Leg.new("w"), Leg.new("r"), Leg.new("c")
    legs = [webhook, replayed, caught_up]
    job = services.workers.grace
    assert job is not None
    COUNTS["stories"] += 1
    note(f"story: {story}")
    for step, op in enumerate(story):
        if op[0] == "time passes":
            await time_passes(db, legs)
            await job.run_once()
        for event in webhook.events(op, step):
            assert await deliver_ok(client, event) in ("applied", "stale")
        report = await replay_events(
            services.db, services.stripe, replayed.events(op, step), replay
        )
        assert set(report.outcomes) <= {"applied", "stale"}
        for event in caught_up.events(op, step):
            await apply_stripe_event(services.db, event, catchup, services.stripe)
        COUNTS["steps"] += 1

        body = {**await read(client, webhook.id("cust")), "_now": await _now(db)}
        _judge(await basis(db, webhook), body)
        rows = [await mirror_row(db, leg) for leg in legs]
        assert rows[1] == rows[0], (op, rows)
        assert rows[2] == rows[0], (op, rows)
        assert (rows[0]["access"], rows[0]["access_reason"]) == (
            body["access"],
            body["access_reason"],
        )
        reached = f"{body['access']}/{body['access_reason']}"
        REACHED[reached] = REACHED.get(reached, 0) + 1


@STORIES
@given(story=stories)
async def test_reconcile_reaches_the_access_the_webhooks_reached(
    client: AppClient, db: Conn, stripe_double: StripeDouble, story: list[Op]
) -> None:
    """Reconcile re-reads Stripe and repairs through the same normaliser and policy: from
    Stripe's current objects alone it reaches the webhook path's access whenever that
    access follows from them (no payment history, dispute or elapsed time involved)."""
    webhook, repaired = Leg.new("w"), Leg.new("k")
    job = client.services.workers.grace
    assert job is not None
    for step, op in enumerate(story):
        if op[0] == "time passes":
            await time_passes(db, [webhook])
            await job.run_once()
        for event in webhook.events(op, step):
            await deliver_ok(client, event)
    facts = await basis(db, webhook)
    final = await read(client, webhook.id("cust"))
    if facts["disputed"] or facts["deleted"] or facts["status"] == "past_due":
        return
    if facts["pause_behavior"] is not None and ("time passes",) in story:
        return  # the paid period may have ended: elapsed time is not Stripe's to say

    # the subscription as Stripe now has it, for a customer Queue has only just linked
    customer = customer_obj(repaired.id("cus"), None, None, repaired.id("cust"), created=T0)
    stripe_double.put_customer(customer)
    event = subscription_event(
        "customer.subscription.updated",
        sub=repaired.id("sub"),
        customer=repaired.id("cus"),
        status=facts["status"],
        created=T0,
        queue_customer_id=repaired.id("cust"),
    )
    stripe_double.put_subscription(with_pause(event, facts["pause_behavior"])["data"]["object"])
    linked = customer_event(
        "customer.created",
        customer=repaired.id("cus"),
        queue_customer_id=repaired.id("cust"),
        created=T0,
    )
    await deliver_ok(client, linked)
    response = await client.post(
        "/api/internal/billing/reconcile",
        json={"queue_customer_id": repaired.id("cust")},
        headers=values.CONSOLE,
    )
    assert response.status_code == 200, response.text
    after = await read(client, repaired.id("cust"))
    assert (after["access"], after["access_reason"]) == (final["access"], final["access_reason"])
    COUNTS["reconciled"] += 1
