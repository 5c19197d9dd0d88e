"""API-version safety: the same story in the event shapes of five Stripe API versions gives
the same state and the same mirror row at every step, by webhook, replay and catch-up."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from raxx_queue.plans import price_tiers
from raxx_queue.stripe_gateway import STRIPE_API_VERSION
from raxx_queue.webhooks.pipeline import EventContext, apply_stripe_event
from raxx_queue.webhooks.replay import replay_events
from tests.conftest import AppClient
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.webhooks import T0, deliver_ok, subscription_event
from tests.webhooks.golden_events import VERSIONS, Story

MIRROR = """
SELECT plan_tier, status, current_period_end, grace_until, entitled, access, access_reason,
       feature_locked_at IS NOT NULL AS locked, version
  FROM billing_subscription_mirror WHERE queue_customer_id = $1
"""
STATE = """
SELECT s.status, s.plan_tier, s.current_period_end, s.grace_until, s.pause_behavior,
       (SELECT count(*) FROM billing_invoice AS i
         WHERE i.stripe_subscription_id = s.stripe_subscription_id) AS invoices,
       (SELECT string_agg(d.status, ',') FROM billing_dispute AS d
         WHERE d.stripe_customer_id = s.stripe_customer_id) AS disputes
  FROM billing_subscription AS s WHERE s.stripe_subscription_id = $1
"""


async def _rows(db: Conn, story: Story) -> tuple[dict[str, Any], dict[str, Any]]:
    mirror = await db.fetchrow(MIRROR, story.ids("cust"))
    state = await db.fetchrow(STATE, story.ids("sub"))
    assert mirror is not None
    assert state is not None
    return dict(mirror), dict(state)


def _metric(version: str, source: str) -> float:
    labels = {"api_version": version, "source": source}
    return REGISTRY.get_sample_value("queue_stripe_events_by_api_version_total", labels) or 0.0


async def test_every_version_tells_the_same_story(client: AppClient, db: Conn) -> None:
    matrix: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {}
    before = {v: _metric(v, "webhook") for v in VERSIONS}
    for n, version in enumerate(VERSIONS):
        story = Story(version, f"w{n}")
        matrix[version] = []
        for step, events in story.steps():
            for event in events:
                assert await deliver_ok(client, event) == "applied", (version, step)
            matrix[version].append((step, *await _rows(db, story)))
    pinned = matrix[STRIPE_API_VERSION]
    accesses = [(step, m["access"], m["access_reason"]) for step, m, _ in pinned]
    assert accesses == [
        ("subscribed", "active", None),
        ("payment failed", "grace", "payment_failed"),
        ("paid", "active", None),
        ("disputed", "suspended", "dispute"),
        ("dispute won", "active", None),
        ("collection paused", "active", None),
        ("paused", "suspended", "paused"),
        ("resumed", "active", None),
        ("canceled", "ended", "canceled"),
    ]
    for version in VERSIONS:
        assert matrix[version] == pinned, version
        counted = sum(len(events) for _, events in Story(version, "x").steps())
        assert _metric(version, "webhook") - before[version] == counted


@pytest.mark.parametrize("version", [VERSIONS[0], VERSIONS[1], STRIPE_API_VERSION])
async def test_replay_and_catchup_read_each_version_like_the_webhook(
    client: AppClient, db: Conn, version: str
) -> None:
    services = client.services
    tiers = price_tiers(services.settings)
    assert services.stripe is not None
    results = []
    for tag, source in (("w", "webhook"), ("r", "replay"), ("c", "catchup")):
        story = Story(version, tag)
        events = [event for _, step in story.steps() for event in step]
        if source == "webhook":
            for event in events:
                await deliver_ok(client, event)
        elif source == "replay":
            context = EventContext(tiers, grace_days=7, source="replay", actor="system")
            report = await replay_events(services.db, services.stripe, events, context)
            assert report.outcomes == {"applied": len(events)}
        else:
            context = EventContext(tiers, grace_days=7, source="catchup", actor="catchup")
            for event in events:
                result = await apply_stripe_event(services.db, event, context, services.stripe)
                assert result.outcome == "applied"
        results.append(await _rows(db, story))
    assert results[1] == results[0]
    assert results[2] == results[0]


async def test_an_unknown_version_is_applied_and_logged_once(
    client: AppClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    for n in range(3):
        event = subscription_event("customer.subscription.updated", created=T0 + n)
        event["api_version"] = "2019-12-03"
        assert await deliver_ok(client, event) == "applied"
    row = await db.fetchrow("SELECT access, entitled FROM billing_subscription_mirror")
    assert dict(row) == {"access": "active", "entitled": True}
    warnings = [e for e in captured_logs.entries if e.get("event") == "stripe_api_version_unknown"]
    assert [(w["api_version"], w["source"]) for w in warnings] == [("2019-12-03", "webhook")]
    assert _metric("2019-12-03", "webhook") >= 3
