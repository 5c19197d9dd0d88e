"""Subscription reads in order are answered by api/read_lane.py, ahead of the framework's
routing: the same answers, log line and metrics as the declared route; every refusal is
left to the route."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import httpx
from prometheus_client import REGISTRY
from starlette.types import Message, Receive, Scope, Send

from raxx_queue.api.read_lane import SubscriptionReadLane
from raxx_queue.api.subscriptions import read_route
from tests.conftest import AppClient, AppFactory
from tests.support import seed, values
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.routes import without_lane

ROUTE = "/api/v1/billing/subscriptions/{queue_customer_id}"
READ = "/api/v1/billing/subscriptions/"
# (method, customer id as sent in the path, headers): what Raptor, Console and anyone
# else may send
REQUESTS: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "cust_r", values.RAPTOR),
    ("GET", "cust_r", values.CONSOLE),
    ("GET", "cust_r", {**values.RAPTOR, "Accept": "text/html"}),
    ("GET", "cust_missing", values.RAPTOR),
    ("GET", "cust_r", {}),
    ("GET", "cust_r", {"Authorization": "Bearer not-a-token"}),
    ("GET", "cust_r", {"Authorization": f"Basic {values.RAPTOR_TOKEN}"}),
    ("GET", "cust_r", values.METRICS),
    ("GET", "bad%20id", values.RAPTOR),
    ("GET", "cust_r%0A", values.RAPTOR),
    ("GET", "x" * 65, values.RAPTOR),
    ("GET", "cust_r/", values.RAPTOR),
    ("POST", "cust_r", values.RAPTOR),
    ("DELETE", "cust_r", values.RAPTOR),
]
ANSWERED_HERE = 4  # the first four: in order, so not passed on
HEADERS_COMPARED = ("content-type", "www-authenticate", "retry-after", "allow", "location")


def _shape(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    headers = {k: response.headers[k] for k in HEADERS_COMPARED if k in response.headers}
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if isinstance(body, dict):
        body.pop("request_id", None)
    return response.status_code, headers, body


async def _answers(client: httpx.AsyncClient) -> list[tuple[int, dict[str, str], Any]]:
    answers = []
    for method, queue_customer_id, headers in REQUESTS:
        response = await client.request(method, READ + queue_customer_id, headers=headers)
        answers.append(_shape(response))
    return answers


async def _seeded(db: Conn) -> None:
    await seed.customer(db, "cust_r", stripe_customer_id="cus_r", email="r@example.com")
    await seed.subscription(db, "sub_r", "cus_r", status="past_due", plan_tier="pro")


async def test_the_lane_answers_as_the_declared_route_does(client: AppClient, db: Conn) -> None:
    await _seeded(db)
    through_lane = await _answers(client)
    statuses = [status for status, _, _ in through_lane]
    assert statuses == [200, 200, 200, 404, 401, 401, 401, 403, 422, 422, 422, 307, 405, 405]
    summary = through_lane[0][2]
    assert summary["queue_customer_id"] == "cust_r"
    assert summary["status"] == "past_due"
    assert "billing_email" not in summary
    assert through_lane[3][2]["error"]["code"] == "CUSTOMER_NOT_FOUND"

    without_lane(client.app, SubscriptionReadLane)
    through_route = await _answers(client)
    assert through_lane == through_route


async def test_billing_switched_off_is_refused_by_the_route(
    app_factory: AppFactory, db: Conn
) -> None:
    await _seeded(db)
    async with app_factory(flag_queue_billing=False) as client:
        response = await client.get(READ + "cust_r", headers=values.RAPTOR)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "60"
    assert response.json()["error"]["code"] == "BILLING_DISABLED"


async def test_the_lane_answers_in_order_reads_itself_and_passes_on_the_rest(
    client: AppClient, db: Conn
) -> None:
    await _seeded(db)
    passed_on: list[str] = []

    async def framework(scope: Scope, receive: Receive, send: Send) -> None:
        passed_on.append(scope["path"])
        await send({"type": "http.response.start", "status": 599, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    lane = SubscriptionReadLane(framework, route=read_route())
    statuses = []
    for method, queue_customer_id, headers in REQUESTS:
        sent: list[Message] = []

        async def send(message: Message, sent: list[Message] = sent) -> None:
            sent.append(message)

        async def receive() -> Message:
            return {"type": "http.disconnect"}

        scope: Scope = {
            "type": "http",
            "method": method,
            "path": unquote(READ + queue_customer_id),  # as the server decodes it
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "app": client.app,
            "state": {"request_id": "req_lane"},
        }
        await lane(scope, receive, send)
        statuses.append(sent[0]["status"])

    assert statuses[:ANSWERED_HERE] == [200, 200, 200, 404]
    assert statuses[ANSWERED_HERE:] == [599] * (len(REQUESTS) - ANSWERED_HERE)
    assert len(passed_on) == len(REQUESTS) - ANSWERED_HERE


def _requests_counted(status: str) -> float:
    value = REGISTRY.get_sample_value(
        "queue_http_requests_total", {"route": ROUTE, "status": status}
    )
    return value or 0.0


async def test_the_lane_keeps_the_request_line_metrics_and_request_id(
    client: AppClient, captured_logs: CapturedLogs, db: Conn
) -> None:
    await _seeded(db)
    before = _requests_counted("200")
    response = await client.get(READ + "cust_r", headers=values.RAPTOR)
    assert response.status_code == 200
    assert _requests_counted("200") == before + 1
    request_id = response.headers["x-request-id"]
    assert captured_logs.logged(
        event="request", route=ROUTE, status=200, caller="raptor", request_id=request_id
    )
    captured_logs.assert_free_of([values.RAPTOR_TOKEN, "r@example.com"])
