"""A Stripe delivery from raw bytes to an outcome: verify, parse, apply, count.

The webhook route hands over the body and the signature header and answers with the
outcome; everything in between lives here, with its metrics and security events.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
import structlog

from raxx_queue.db.pool import Database
from raxx_queue.metrics import (
    WEBHOOK_EVENTS,
    WEBHOOK_SECONDS,
    WEBHOOK_SECRET_MATCHES,
    WEBHOOK_SIGNATURE_FAILURES,
)
from raxx_queue.plans import price_tiers
from raxx_queue.sentry import capture_security_event
from raxx_queue.settings import Settings
from raxx_queue.webhooks.errors import InvalidSignature, WebhookNotConfigured
from raxx_queue.webhooks.pipeline import (
    EventContext,
    EventResult,
    SubscriptionSource,
    apply_stripe_event,
    check_nesting,
)
from raxx_queue.webhooks.signature import verify_signature

log = structlog.get_logger(__name__)


def verified_event(payload: bytes, signature: str | None, settings: Settings) -> Any:
    """The JSON a delivery carries, once its signature holds; else InvalidSignature.

    Any JSON: apply_stripe_event checks that it is an event.
    """
    secrets = settings.webhook_secrets()
    if not secrets:
        raise WebhookNotConfigured()
    try:
        index = verify_signature(
            payload, signature, secrets, settings.stripe_webhook_tolerance_seconds, time.time()
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
    return event


async def receive_delivery(
    db: Database,
    stripe: SubscriptionSource | None,
    settings: Settings,
    payload: bytes,
    signature: str | None,
    request_id: str | None,
) -> EventResult:
    """Verify, then apply in one transaction; the result only once it is committed."""
    started = time.perf_counter()
    event = verified_event(payload, signature, settings)
    context = EventContext(
        price_tiers=price_tiers(settings),
        grace_days=settings.grace_period_days,
        request_id=request_id,
    )
    result = await apply_stripe_event(db, event, context, stripe)
    WEBHOOK_EVENTS.labels(type=result.event_type, outcome=result.outcome).inc()
    WEBHOOK_SECONDS.observe(time.perf_counter() - started)
    return result
