"""A Stripe delivery from raw bytes to an outcome: verify, parse, apply, count.

The webhook route hands over the body and the signature header and answers with the
outcome; everything in between lives here, with its metrics and security events.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, NoReturn

import orjson
import structlog

from raxx_queue.db.pool import Database
from raxx_queue.log_limits import REFUSED_REQUEST_LINES, current_source
from raxx_queue.metrics import (
    WEBHOOK_EVENTS,
    WEBHOOK_SECONDS,
    WEBHOOK_SECRET_MATCHES,
    WEBHOOK_SIGNATURE_FAILURES,
    labelled,
)
from raxx_queue.plans import price_tiers
from raxx_queue.sentry import capture_security_event
from raxx_queue.settings import Settings
from raxx_queue.webhooks.batching import EventBatcher
from raxx_queue.webhooks.changes import Json
from raxx_queue.webhooks.errors import InvalidSignature, WebhookNotConfigured
from raxx_queue.webhooks.pipeline import (
    EventContext,
    EventResult,
    SubscriptionSource,
    apply_params,
    apply_stripe_event,
    check_nesting,
)
from raxx_queue.webhooks.signature import verify_signature

log = structlog.get_logger(__name__)

_KEY_MODES = {"sk_live_": True, "rk_live_": True, "sk_test_": False, "rk_test_": False}


def deployment_livemode(settings: Settings) -> bool | None:
    """Whether Queue runs against live Stripe (its key's mode); None with no key or a key
    of no known shape."""
    key = settings.stripe_api_key
    if key is None:
        return None
    return next(
        (live for prefix, live in _KEY_MODES.items() if key.get_secret_value().startswith(prefix)),
        None,
    )


def is_other_mode(livemode: object, settings: Settings) -> bool:
    """An event of the other Stripe mode than the deployment's (a missing `livemode`
    counts as test mode, as Queue records it)."""
    mode = deployment_livemode(settings)
    return mode is not None and (livemode is True) is not mode


def verify_delivery(
    payload: bytes, signature: str | None, secrets: list[str], tolerance: int, *, endpoint: str
) -> None:
    """Check a delivery's `Stripe-Signature` against the endpoint's secrets; any failure is
    counted, logged and sent to Sentry as a security event, then InvalidSignature."""
    if not secrets:
        raise WebhookNotConfigured()
    try:
        index = verify_signature(payload, signature, secrets, tolerance, time.time())
    except InvalidSignature as error:
        reject_delivery(error.reason, len(payload), endpoint=endpoint)
    prefix = "" if endpoint == "snapshot" else f"{endpoint}:"
    labelled(WEBHOOK_SECRET_MATCHES, f"{prefix}{index}").inc()


def reject_delivery(reason: str, size: int, *, endpoint: str) -> NoReturn:
    WEBHOOK_SIGNATURE_FAILURES.labels(reason=reason).inc()
    if REFUSED_REQUEST_LINES.allow(current_source.get()):
        suppressed = REFUSED_REQUEST_LINES.take_suppressed()
        log.warning(
            "webhook_rejected", reason=reason, bytes=size, endpoint=endpoint, suppressed=suppressed
        )
    capture_security_event("stripe webhook rejected", reason=reason, endpoint=endpoint)
    raise InvalidSignature(reason) from None


def verified_event(payload: bytes, signature: str | None, settings: Settings) -> Any:
    """The JSON a delivery carries, once its signature holds; else InvalidSignature.

    Any JSON: apply_stripe_event checks that it is an event.
    """
    verify_delivery(
        payload,
        signature,
        settings.webhook_secrets(),
        settings.stripe_webhook_tolerance_seconds,
        endpoint="snapshot",
    )
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        reject_delivery("invalid_json", len(payload), endpoint="snapshot")
    check_nesting(payload, event)
    return event


def raw_copy(payload: bytes) -> str | None:
    """The body to store as the event's raw copy; None (the parsed event stored whole) for
    one holding a `\\u0000` escape, which Postgres's jsonb refuses: such an event is
    refused as unstorable, as before there was a raw copy, rather than stored as text
    that no reader could parse."""
    return None if b"\\u0000" in payload else payload.decode()


def delivery_params(payload: bytes, context: EventContext) -> tuple[Json, str | None]:
    """A delivery's parameter of billing_apply_stripe_event and its raw copy, as
    receive_delivery sends them (for a payload already verified; the benchmarks that call
    the statement straight send theirs the same way)."""
    raw = raw_copy(payload)
    return apply_params(orjson.loads(payload), replace(context, raw=raw)), raw


async def receive_delivery(
    db: Database,
    stripe: SubscriptionSource | None,
    settings: Settings,
    payload: bytes,
    signature: str | None,
    request_id: str | None,
    batcher: EventBatcher | None = None,
) -> EventResult:
    """Verify, then apply in one transaction; the result only once it is committed."""
    started = time.perf_counter()
    event = verified_event(payload, signature, settings)
    # test-mode events reaching a live deployment (or the reverse) are recorded, not applied
    other_mode = is_other_mode(event.get("livemode") if isinstance(event, dict) else None, settings)
    context = EventContext(
        price_tiers=price_tiers(settings),
        grace_days=settings.grace_period_days,
        dispute_access=settings.dispute_access,
        request_id=request_id,
        ignore=other_mode,
        raw=raw_copy(payload),
    )
    result = await apply_stripe_event(db, event, context, stripe, batcher)
    if other_mode and result.outcome == "ignored":
        log.warning("webhook_other_mode_ignored", event_id=result.event_id, type=result.event_type)
    labelled(WEBHOOK_EVENTS, result.event_type, result.outcome).inc()
    WEBHOOK_SECONDS.observe(time.perf_counter() - started)
    return result
