"""POST /api/v1/billing/webhook: Stripe's deliveries."""

from __future__ import annotations

import time
from typing import Literal

import orjson
import structlog
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from raxx_queue.api.deps import services_of
from raxx_queue.api.middleware import annotate_request_log
from raxx_queue.errors import ServiceError, error_responses, request_id_of
from raxx_queue.jsonio import dumps
from raxx_queue.metrics import (
    WEBHOOK_EVENTS,
    WEBHOOK_SECONDS,
    WEBHOOK_SECRET_MATCHES,
    WEBHOOK_SIGNATURE_FAILURES,
)
from raxx_queue.sentry import capture_security_event
from raxx_queue.webhooks.pipeline import EventContext, apply_stripe_event, check_nesting
from raxx_queue.webhooks.signature import InvalidSignature, verify_signature

router = APIRouter(prefix="/api/v1/billing", tags=["webhook"])
log = structlog.get_logger(__name__)


class WebhookAck(BaseModel):
    received: Literal[True] = True
    event_id: str
    outcome: Literal["applied", "duplicate", "stale", "ignored"]


class WebhookNotConfigured(ServiceError):
    status = 503
    code = "WEBHOOK_NOT_CONFIGURED"

    def __init__(self) -> None:
        super().__init__("no webhook secret is configured", headers={"Retry-After": "300"})


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
    """Verify, then apply in one transaction; 200 only after commit."""
    started = time.perf_counter()
    # services straight from the app, not through a dependency: one less step to solve
    # on the hottest route
    services = services_of(request)
    settings = services.settings
    secrets = settings.webhook_secrets()
    if not secrets:
        raise WebhookNotConfigured()
    payload = await request.body()
    try:
        index = verify_signature(
            payload,
            request.headers.get("stripe-signature"),
            secrets,
            settings.stripe_webhook_tolerance_seconds,
            time.time(),
        )
        event = orjson.loads(payload)
    except (InvalidSignature, orjson.JSONDecodeError) as error:
        reason = error.reason if isinstance(error, InvalidSignature) else "invalid_json"
        WEBHOOK_SIGNATURE_FAILURES.labels(reason=reason).inc()
        log.warning("webhook_rejected", reason=reason, bytes=len(payload))
        capture_security_event("stripe webhook rejected", reason=reason)
        raise InvalidSignature(reason) from None
    WEBHOOK_SECRET_MATCHES.labels(secret_index=str(index)).inc()
    check_nesting(payload, event)

    context = EventContext(
        price_tiers=settings.price_tiers(),
        grace_days=settings.grace_period_days,
        request_id=request_id_of(request),
    )
    result = await apply_stripe_event(services.db, event, context, services.stripe)
    if result.outcome == "applied":
        services.audit_wakeup.nudge()
    if result.mirror_changed:
        services.mirror_wakeup.nudge()
    WEBHOOK_EVENTS.labels(type=result.event_type, outcome=result.outcome).inc()
    WEBHOOK_SECONDS.observe(time.perf_counter() - started)
    annotate_request_log(
        request.scope,
        event_id=result.event_id,
        type=result.event_type,
        outcome=result.outcome,
        queue_customer_id=result.queue_customer_id,
    )
    # the ack is built by hand: it is on the hot path, and its shape is fixed (WebhookAck)
    ack = {"received": True, "event_id": result.event_id, "outcome": result.outcome}
    return Response(dumps(ack), media_type="application/json")
