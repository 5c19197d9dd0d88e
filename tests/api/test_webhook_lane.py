"""Stripe's deliveries are answered by api/webhook_lane.py, ahead of the framework's
routing: the same answers, log line, metrics and limits as the declared route."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import REGISTRY
from starlette.types import Message

from raxx_queue.api.webhook import delivery_route
from raxx_queue.api.webhook_lane import WebhookLane
from tests.conftest import AppClient
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.routes import without_lane
from tests.support.webhooks import WEBHOOK, deliver, subscription_event


def _shape(response: httpx.Response) -> tuple[int, str, dict[str, Any]]:
    body = response.json()
    body.pop("request_id", None)
    return response.status_code, response.headers["content-type"], body


def _requests_counted(status: str) -> float:
    value = REGISTRY.get_sample_value(
        "queue_http_requests_total", {"route": WEBHOOK, "status": status}
    )
    return value or 0.0


async def _answers(client: AppClient, sub: str) -> list[tuple[int, str, dict[str, Any]]]:
    event = subscription_event("customer.subscription.created", sub=sub, event_id=f"evt_{sub}")
    applied = await deliver(client, event)
    again = await deliver(client, event)
    forged = await deliver(client, subscription_event("customer.subscription.updated"), secret="x")
    not_json = await client.post(WEBHOOK, content=b"{", headers={"Stripe-Signature": "t=1,v1=00"})
    wrong_method = await client.get(WEBHOOK)
    # the duplicate answer names the same event as the first
    assert again.json()["event_id"] == applied.json()["event_id"]
    return [_shape(r) for r in (applied, again, forged, not_json, wrong_method)]


async def test_the_lane_answers_as_the_declared_route_does(client: AppClient) -> None:
    through_lane = await _answers(client, "sub_lane")
    assert [status for status, _, _ in through_lane] == [200, 200, 400, 400, 405]
    assert through_lane[0][2]["outcome"] == "applied"
    assert through_lane[1][2]["outcome"] == "duplicate"

    without_lane(client.app, WebhookLane)
    through_route = await _answers(client, "sub_route")
    for lane, route in zip(through_lane, through_route, strict=True):
        assert lane[:2] == route[:2]
        assert lane[2].keys() == route[2].keys()
    assert [b.get("outcome") for _, _, b in through_lane] == [
        b.get("outcome") for _, _, b in through_route
    ]
    assert [b.get("error") for _, _, b in through_lane] == [
        b.get("error") for _, _, b in through_route
    ]


async def test_the_lane_keeps_the_request_line_metrics_and_request_id(
    client: AppClient, captured_logs: CapturedLogs, db: Conn
) -> None:
    before = _requests_counted("200")
    event = subscription_event("customer.subscription.created")
    body_id = event["id"]
    response = await deliver(client, event)
    assert response.status_code == 200
    assert _requests_counted("200") == before + 1
    request_id = response.headers["x-request-id"]
    assert captured_logs.logged(
        event="request",
        route=WEBHOOK,
        status=200,
        event_id=body_id,
        outcome="applied",
        request_id=request_id,
    )
    # the audit row carries the request id the answer echoed
    audited = await db.fetchval(
        "SELECT request_id FROM billing_action_log WHERE event_id = $1", body_id
    )
    assert audited == request_id


async def test_the_lane_refuses_an_oversized_body_before_reading_it_whole(
    client: AppClient,
) -> None:
    response = await client.post(
        WEBHOOK,
        content=b"x" * (1024 * 1024 + 1),
        headers={"Stripe-Signature": "t=1,v1=00", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_a_client_gone_before_its_body_is_neither_answered_nor_counted_as_forged(
    client: AppClient,
) -> None:
    app = client.app  # type: ignore[attr-defined]
    lane = WebhookLane(app.router, route=delivery_route())
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"id": "evt_', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    def rejected() -> float:
        samples = [
            s.value
            for metric in REGISTRY.collect()
            if metric.name == "queue_webhook_signature_failures"
            for s in metric.samples
            if s.name.endswith("_total")
        ]
        return sum(samples)

    before = rejected()
    scope = {
        "type": "http",
        "method": "POST",
        "path": WEBHOOK,
        "headers": [(b"stripe-signature", b"t=1,v1=00")],
        "app": app,
    }
    await lane(scope, receive, send)
    assert sent == []
    assert not incoming
    assert rejected() == before
