"""Applying one Stripe event: normalise, then one call to billing_apply_stripe_event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

import asyncpg
import structlog

from raxx_queue.db.pool import Database
from raxx_queue.errors import ServiceError
from raxx_queue.mirror.rows import log_access_change
from raxx_queue.vocabulary import Actor
from raxx_queue.webhooks.api_versions import observe_api_version
from raxx_queue.webhooks.batching import EventBatcher, apply_one
from raxx_queue.webhooks.changes import EventChange, Json, build_change, subscription_change
from raxx_queue.webhooks.errors import InvalidEvent

log = structlog.get_logger(__name__)

SAME_SECOND_CONFLICT = "QU001"
KNOWN_PAYMENT = "SELECT EXISTS (SELECT 1 FROM billing_payment_ref WHERE payment_ref = ANY($1))"
# Stripe's events nest about ten levels; the JSON encoder stops at 255.
MAX_EVENT_DEPTH = 64
# A signed event whose values Postgres cannot hold (a NUL character, a timestamp or
# number out of range, a key too long to index): bad input, not a server fault.
UNSTORABLE = (asyncpg.DataError, asyncpg.ProgramLimitExceededError)


class SubscriptionSource(Protocol):
    """Stripe, read when an event alone is not enough: a same-second conflict (the current
    subscription), a dispute on a payment Queue has not seen (its charge's customer)."""

    async def retrieve_subscription(self, subscription_id: str) -> dict[str, Any]: ...

    async def retrieve_charge(self, charge_id: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class EventResult:
    event_id: str
    event_type: str
    outcome: str
    queue_customer_id: str | None
    mirror_changed: bool


@dataclass(frozen=True)
class EventContext:
    """Who is applying the event, and with which configuration."""

    price_tiers: Mapping[str, str]
    grace_days: int
    source: str = "webhook"
    actor: Actor = "stripe"
    request_id: str | None = None
    # the audit action; default "stripe.<event type>"
    action: str | None = None
    # record the event as ignored and apply nothing (an event of the other Stripe mode)
    ignore: bool = False
    # DISPUTE_ACCESS: whether an open dispute suspends access ("suspend") or not ("keep")
    dispute_access: str = "suspend"
    # the delivery's body as Stripe sent it: stored as the event's raw copy, beside a
    # stub payload (stored_payload); None stores the parsed event whole
    raw: str | None = None


def event_envelope(event: Any) -> tuple[str, str, int, Json]:
    """(id, type, created, data.object) of a parsed event, or InvalidEvent."""
    if not isinstance(event, dict):
        raise InvalidEvent("event is not a JSON object")
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    obj = event.get("data", {}).get("object") if isinstance(event.get("data"), dict) else None
    if not isinstance(event_id, str) or not event_id or len(event_id) > 255:
        raise InvalidEvent("event has no id")
    if not isinstance(event_type, str) or not event_type or len(event_type) > 255:
        raise InvalidEvent("event has no type")
    if not isinstance(created, int) or isinstance(created, bool) or created <= 0:
        raise InvalidEvent("event has no created time")
    if not isinstance(obj, dict):
        raise InvalidEvent("event has no data.object")
    return event_id, event_type, created, obj


# What the stub of an event stored with its raw copy keeps of the event's object: what
# the erasure check on insert reads (billing_event_customer, billing_event_refs and
# billing_event_erased_customer), and what retention keeps (billing_strip_payload).
_ENVELOPE = ("id", "object", "type", "created", "api_version", "livemode")
_OBJECT_IDS = ("id", "object", "client_reference_id")
_OBJECT_REFS = ("customer", "charge", "payment_intent", "payment_method", "latest_charge")


def _ref(value: Any) -> Any:
    """A reference as the stub keeps it: an expanded object cut to its id."""
    return {"id": value["id"]} if isinstance(value, dict) and "id" in value else value


def stored_payload(event: Json, obj: Json, raw: str | None) -> Json:
    """The event's `payload` as stored: the event itself, or, when its raw copy is stored
    beside it (migrations: billing_event_raw_copy), its envelope and the ids of its
    object; whatever reads a stored event reads the raw copy then."""
    if raw is None:
        return event
    kept = {key: obj[key] for key in _OBJECT_IDS if key in obj}
    kept.update((key, _ref(obj[key])) for key in _OBJECT_REFS if key in obj)
    metadata = obj.get("metadata")
    if isinstance(metadata, dict) and "queue_customer_id" in metadata:
        kept["metadata"] = {"queue_customer_id": metadata["queue_customer_id"]}
    stub = {key: event[key] for key in _ENVELOPE if key in event}
    stub["data"] = {"object": kept}
    return stub


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        for child in children:
            if isinstance(child, dict | list):
                if depth >= limit:
                    return True
                stack.append((child, depth + 1))
    return False


def check_nesting(payload: bytes, event: Any) -> None:
    """InvalidEvent if the event nests deeper than any Stripe event does."""
    # fast path: a document with few brackets cannot be deep
    if payload.count(b"{") + payload.count(b"[") <= MAX_EVENT_DEPTH:
        return
    if isinstance(event, dict | list) and _deeper_than(event, MAX_EVENT_DEPTH):
        raise InvalidEvent(f"event nests deeper than {MAX_EVENT_DEPTH} levels")


def _params(event: Json, change: EventChange, context: EventContext, force: bool) -> Json:
    event_id, event_type, created, obj = event_envelope(event)
    return {
        "event_id": event_id,
        "type": event_type,
        "created": created,
        "api_version": event.get("api_version"),
        "livemode": bool(event.get("livemode")),
        "source": context.source,
        "actor": context.actor,
        "action": context.action,
        "request_id": context.request_id,
        "payload": stored_payload(event, obj, context.raw),
        "family": change.family,
        "stripe_customer_id": change.stripe_customer_id,
        "object_id": change.object_id,
        "change": change.change,
        "grace_days": context.grace_days,
        "dispute_access": context.dispute_access,
        "force": force,
    }


def apply_params(event: Json, context: EventContext) -> Json:
    """The parameter of billing_apply_stripe_event for a verified event (no Stripe re-read)."""
    _, event_type, _, obj = event_envelope(event)
    return _params(event, build_change(event_type, obj, context.price_tiers), context, force=False)


async def _apply(
    db: Database, params: Json, raw: str | None, batcher: EventBatcher | None
) -> asyncpg.Record:
    try:
        if batcher is None:
            return await apply_one(db, params, raw)
        return await batcher.apply(params, raw)
    except UNSTORABLE as error:
        log.warning("event_unstorable", event_id=params["event_id"], sqlstate=error.sqlstate)
        raise InvalidEvent("event holds a value Queue cannot store") from None


async def apply_stripe_event(
    db: Database,
    event: Json,
    context: EventContext,
    stripe: SubscriptionSource | None,
    batcher: EventBatcher | None = None,
) -> EventResult:
    """Apply one verified event exactly once; a single statement, so one round trip
    (with a batcher, shared with the deliveries that arrived with it)."""
    event_id, event_type, _, obj = event_envelope(event)
    change = build_change(event_type, obj, context.price_tiers)
    if context.ignore:
        change = EventChange(family="ignored", object_id=change.object_id)
    observe_api_version(event.get("api_version"), context.source)
    if change.family == "dispute" and change.stripe_customer_id is None:
        change = await _dispute_customer(db, change, stripe)
    try:
        row = await _apply(db, _params(event, change, context, force=False), context.raw, batcher)
    except asyncpg.PostgresError as error:
        if error.sqlstate != SAME_SECOND_CONFLICT:
            raise
        change = await _resolve_same_second(change, event_type, context, stripe)
        row = await _apply(db, _params(event, change, context, force=True), context.raw, None)
    if row["access_change"] is not None:  # committed: the log says what the audit row says
        log_access_change(row["queue_customer_id"], row["access_change"], event_id=event_id)
    return EventResult(
        event_id=event_id,
        event_type=event_type,
        outcome=row["outcome"],
        queue_customer_id=row["queue_customer_id"],
        mirror_changed=row["mirror_changed"],
    )


async def _dispute_customer(
    db: Database, change: EventChange, stripe: SubscriptionSource | None
) -> EventChange:
    """A dispute names its charge, not its customer. The payments Queue has seen answer
    (billing_payment_ref, in the event's statement); for one it has not, ask Stripe."""
    charge_id = change.change.get("charge_id")
    if stripe is None or not isinstance(charge_id, str):
        return change
    async with db.connection() as conn:
        if await conn.fetchval(KNOWN_PAYMENT, [charge_id, change.change.get("payment_intent_id")]):
            return change
    try:
        charge = await stripe.retrieve_charge(charge_id)
    except ServiceError as error:
        # recorded without a customer; reconcile or the dispute's next event can tell
        log.warning("dispute_charge_unreadable", dispute=change.object_id, code=error.code)
        return change
    customer = charge.get("customer")
    customer_id = customer if isinstance(customer, str) else (customer or {}).get("id")
    if not isinstance(customer_id, str):
        return change
    return replace(change, stripe_customer_id=customer_id)


async def _resolve_same_second(
    change: EventChange, event_type: str, context: EventContext, stripe: SubscriptionSource | None
) -> EventChange:
    """Two updates of one subscription in the same second: store what Stripe says now."""
    subscription_id = change.object_id
    assert subscription_id is not None
    if stripe is None:
        log.warning(
            "same_second_conflict_unresolved",
            subscription=subscription_id,
            reason="no Stripe key configured; the later delivery wins",
        )
        return change
    current = await stripe.retrieve_subscription(subscription_id)
    log.info("same_second_conflict_resolved", subscription=subscription_id)
    return subscription_change(event_type, current, context.price_tiers)
