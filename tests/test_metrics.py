"""Counters the hot path reaches through `labelled`: the same children, the same samples."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from raxx_queue.metrics import labelled
from tests.conftest import AppClient
from tests.support.webhooks import deliver, subscription_event


def _events_counted(event_type: str, outcome: str) -> float:
    labels = {"type": event_type, "outcome": outcome}
    return REGISTRY.get_sample_value("queue_webhook_events_total", labels) or 0.0


def test_labelled_is_the_metrics_own_child_in_label_order() -> None:
    registry = CollectorRegistry()
    counter = Counter("sample_total", "a test counter", ["route", "status"], registry=registry)
    labelled(counter, "/a", "200").inc()
    labelled(counter, "/a", "200").inc()
    labelled(counter, "/a", "404").inc()
    assert labelled(counter, "/a", "200") is counter.labels(route="/a", status="200")
    assert registry.get_sample_value("sample_total", {"route": "/a", "status": "200"}) == 2
    assert registry.get_sample_value("sample_total", {"route": "/a", "status": "404"}) == 1
    # the metric's own checks still hold: a wrong count of values is refused, not kept
    with pytest.raises(ValueError, match="label count"):
        labelled(counter, "/a")
    assert registry.get_sample_value("sample_total", {"route": "/a", "status": "404"}) == 1


async def test_each_delivery_is_counted_once_by_type_and_outcome(client: AppClient) -> None:
    kind = "customer.subscription.created"
    applied, duplicate = _events_counted(kind, "applied"), _events_counted(kind, "duplicate")
    event = subscription_event(kind, sub="sub_metrics_counted", event_id="evt_metrics_counted")
    assert (await deliver(client, event)).status_code == 200
    assert (await deliver(client, event)).status_code == 200
    assert _events_counted(kind, "applied") == applied + 1
    assert _events_counted(kind, "duplicate") == duplicate + 1
