"""POST /api/v1/billing/webhook and /webhook/thin: Stripe's deliveries, snapshot and thin."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel

from raxx_queue.api.deps import ServicesDep, services_of
from raxx_queue.api.middleware import annotate_request_log
from raxx_queue.api.webhook_lane import acknowledge_delivery
from raxx_queue.billing.thin_events import receive_thin_event
from raxx_queue.errors import error_responses, request_id_of
from raxx_queue.jsonio import dumps

router = APIRouter(prefix="/api/v1/billing", tags=["webhook"])


class WebhookAck(BaseModel):
    received: Literal[True] = True
    event_id: str
    outcome: Literal["applied", "duplicate", "stale", "ignored"]


class ReconcileSummary(BaseModel):
    checked: int
    drifted: int


class ThinWebhookAck(BaseModel):
    received: Literal[True] = True
    event_id: str
    type: str
    outcome: Literal["applied", "duplicate", "stale", "ignored"]
    # the snapshot event a `v1.*` notification named, once fetched and applied
    snapshot_event_id: str | None = None
    # the customer re-read from Stripe (health alerts; `v1.*` without a snapshot event)
    reconciled: ReconcileSummary | None = None


# The body is read raw (the signature covers its bytes); documented here for clients.
WEBHOOK_OPENAPI = {
    "parameters": [
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "t=<unix time>,v1=<HMAC-SHA256 hex>[,v1=…]",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "a Stripe event, exactly as Stripe sent it",
    },
}


@router.post(
    "/webhook",
    response_model=WebhookAck,
    responses=error_responses(400, 413, 502, 503),
    openapi_extra=WEBHOOK_OPENAPI,
)
async def receive_stripe_event(request: Request) -> Response:
    """Verify, then apply in one transaction; 200 only after commit.

    In the service, api/webhook_lane.py answers this route ahead of the framework; this
    handler serves an app built without that layer, with the same code."""
    ack = await acknowledge_delivery(
        services_of(request),
        request.scope,
        await request.body(),
        request.headers.get("stripe-signature"),
        request_id_of(request),
    )
    return Response(dumps(ack), media_type="application/json")


def delivery_route() -> APIRoute:
    """The declared route of Stripe's snapshot deliveries (api/webhook_lane.py answers it)."""
    return next(
        route
        for route in router.routes
        if isinstance(route, APIRoute) and route.endpoint is receive_stripe_event
    )


THIN_WEBHOOK_OPENAPI = {
    "parameters": WEBHOOK_OPENAPI["parameters"],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "a thin event notification (object v2.core.event), as Stripe sent it",
    },
}


@router.post(
    "/webhook/thin",
    response_model=ThinWebhookAck,
    responses=error_responses(400, 413, 502, 503),
    openapi_extra=THIN_WEBHOOK_OPENAPI,
)
async def receive_thin_stripe_event(request: Request, services: ServicesDep) -> ThinWebhookAck:
    """Thin events of an event destination: verified with STRIPE_THIN_WEBHOOK_SECRET, read
    with the SDK, then applied (the snapshot event behind a `v1.*` one), reconciled (a
    health alert) or recorded (anything else); 200 once that is committed."""
    result = await receive_thin_event(
        services.db,
        services.stripe,
        services.settings,
        await request.body(),
        request.headers.get("stripe-signature"),
        request_id_of(request),
    )
    annotate_request_log(
        request.scope, event_id=result.event_id, type=result.event_type, outcome=result.outcome
    )
    return ThinWebhookAck(
        event_id=result.event_id,
        type=result.event_type,
        outcome=result.outcome,
        snapshot_event_id=result.snapshot_event_id,
        reconciled=ReconcileSummary(**result.reconciled) if result.reconciled else None,
    )
