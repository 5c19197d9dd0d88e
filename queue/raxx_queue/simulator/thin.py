"""Thin events, as Stripe's event destinations send them, and the v2 events behind them.

A thin notification names what happened and to which object; the receiver fetches the
rest (`GET /v2/core/events/{id}`: the `snapshot_event` of a `v1.*` notification, the
`data` of a health alert). Both shapes follow Stripe's API reference for v2 events; the
notification is signed exactly like a snapshot webhook (`events.signed`).

    notification, full = thin_for_snapshot(snapshot_event)
    double.add_v2_event(full)
    body, header = signed(notification, "whsec_thin")
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.objects import new_id

EVENT_GENERATION_FAILURE_RESOLVED = "v2.core.health.event_generation_failure.resolved"

# v1 object name → the path of its resource, for `related_object.url`
_RESOURCE_PATHS = {
    "customer": "/v1/customers",
    "subscription": "/v1/subscriptions",
    "invoice": "/v1/invoices",
    "dispute": "/v1/disputes",
    "charge": "/v1/charges",
    "checkout.session": "/v1/checkout/sessions",
}


def rfc3339(epoch: float) -> str:
    """A v2 timestamp: `2026-12-02T17:14:35.123Z`."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def related_object(object_id: str, object_type: str) -> Json:
    """`{id, type, url}` of a v1 object."""
    path = _RESOURCE_PATHS.get(object_type, "/v1/" + object_type.replace(".", "/") + "s")
    return {"id": object_id, "type": object_type, "url": f"{path}/{object_id}"}


def v2_event(
    type: str,
    *,
    event_id: str | None = None,
    created: float | None = None,
    related: Json | None = None,
    snapshot_event: str | None = None,
    data: Mapping[str, Any] | None = None,
    livemode: bool = False,
) -> Json:
    """The full v2 event (`GET /v2/core/events/{id}`)."""
    event: Json = {
        "id": event_id or new_id("evt_test_", length=46),
        "object": "v2.core.event",
        "type": type,
        "livemode": livemode,
        "created": rfc3339(time.time() if created is None else created),
        "context": None,
        "reason": None,
        "related_object": related,
        "changes": None,
    }
    if snapshot_event is not None:
        event["snapshot_event"] = snapshot_event
    if data is not None:
        event["data"] = dict(data)
    return event


def notification_of(event: Mapping[str, Any]) -> Json:
    """What the destination receives for a v2 event: no `data`, no `snapshot_event`."""
    fields = ("id", "object", "type", "livemode", "created", "context", "reason")
    notification = {name: event.get(name) for name in fields}
    if event.get("related_object") is not None:
        notification["related_object"] = dict(event["related_object"])
    return notification


def thin_for_snapshot(
    snapshot: Mapping[str, Any], *, created: float | None = None
) -> tuple[Json, Json]:
    """(notification, full v2 event) of the `v1.*` thin event Stripe sends beside a
    snapshot event: same type prefixed `v1.`, the same object, the snapshot's id."""
    obj = snapshot["data"]["object"]
    full = v2_event(
        "v1." + str(snapshot["type"]),
        created=snapshot["created"] if created is None else created,
        related=related_object(str(obj["id"]), str(obj["object"])),
        snapshot_event=str(snapshot["id"]),
        livemode=bool(snapshot.get("livemode")),
    )
    return notification_of(full), full


def event_generation_failure(
    failed_type: str,
    object_id: str,
    object_type: str,
    *,
    resolved_at: float | None = None,
) -> tuple[Json, Json]:
    """(notification, full v2 event) of a health alert: Stripe failed to generate an event
    of `failed_type` about the object, and says so once the failure is resolved."""
    moment = time.time() if resolved_at is None else resolved_at
    related = related_object(object_id, object_type)
    full = v2_event(
        EVENT_GENERATION_FAILURE_RESOLVED,
        created=moment,
        data={
            "alert_id": new_id("halert_", length=46),
            "grouping_key": new_id("_grouping_", length=52),
            "impact": {
                "event_type": failed_type,
                "related_object_id": object_id,
                "related_object": related,
            },
            "resolved_at": rfc3339(moment),
            "severity": "critical",
            "summary": "We have failed to create a notification for your Stripe account.",
        },
    )
    return notification_of(full), full
