"""Stripe's deliveries straight to their handler, past the framework's routing.

`POST /api/v1/billing/webhook` is nearly all of Queue's traffic, and it needs none of
what the framework does per request (route matching over every route, a Request and
its dependency solving, a response model): this ASGI layer, the innermost of Queue's
middleware, answers it itself. Request ids, the request log line, the body limit and
the 500 for an unexpected error stay with the middleware around it; an error in the
delivery is rendered in the same shape as everywhere else. Any other request, and any
other method on the webhook's path, goes on to the framework. The route stays declared
in `api/webhook.py`, which is what the OpenAPI schema and the auth matrix read.
"""

from __future__ import annotations

from typing import Any

from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from raxx_queue.api.deps import Services, app_services
from raxx_queue.api.lane_answers import answer_error, answer_json, request_id_in
from raxx_queue.api.middleware import annotate_request_log, header_value
from raxx_queue.errors import BillingDisabled, ServiceError
from raxx_queue.jsonio import dumps
from raxx_queue.webhooks.intake import receive_delivery


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None when the client went away before sending it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def acknowledge_delivery(
    services: Services, scope: Scope, body: bytes, signature: str | None, request_id: str
) -> dict[str, Any]:
    """Verify and apply a delivery; its acknowledgement (WebhookAck) once committed."""
    result = await receive_delivery(
        services.db,
        services.stripe,
        services.settings,
        body,
        signature,
        request_id,
        services.batcher,
    )
    annotate_request_log(
        scope,
        event_id=result.event_id,
        type=result.event_type,
        outcome=result.outcome,
        queue_customer_id=result.queue_customer_id,
    )
    return {"received": True, "event_id": result.event_id, "outcome": result.outcome}


class WebhookLane:
    """Answer Stripe's snapshot deliveries without the framework; pass the rest on."""

    def __init__(self, app: ASGIApp, route: APIRoute) -> None:
        self.app = app
        # the declared route: its path is the one answered here, and metrics and logs
        # name it as for any other
        self.route = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.route.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        services = app_services(scope["app"])
        try:
            if not services.settings.flag_queue_billing:
                raise BillingDisabled()
            payload = await _read_body(receive)
            if payload is None:
                return  # nobody to answer; a partial body is not a forged delivery
            ack = await acknowledge_delivery(
                services,
                scope,
                payload,
                header_value(scope, b"stripe-signature"),
                request_id_in(scope),
            )
        except ServiceError as error:
            await answer_error(send, scope, error)
            return
        await answer_json(send, 200, dumps(ack))
