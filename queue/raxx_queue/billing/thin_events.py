"""Thin events (Stripe's event destinations): verify, read with the SDK, act, record.

A thin notification names what happened and to which object, never the object:
- `v1.<type>` about an object Queue keeps (customers, subscriptions, invoices,
  disputes; any type Queue handles): the snapshot event behind it is fetched
  (`GET /v2/core/events/{id}` names it in `snapshot_event`, then `GET /v1/events/{it}`)
  and applied through the webhook's own statement, so the snapshot webhook delivering
  the same event, before or after, is a duplicate by id. Without a snapshot event, the
  object's customer is reconciled instead.
- `v2.core.health.event_generation_failure.resolved`: Stripe failed to generate an event
  at all, so none will ever arrive or be listed; the customer of the object it was about
  is reconciled at once (re-read from Stripe, drift repaired as actor `reconcile`).
- anything else: recorded, answered 200 `ignored`, like the snapshot endpoint does.
The notification itself is recorded (source `thin`) once handled: a retry of it is a
duplicate. Until then a failure (Stripe unreachable) is a 5xx, and Stripe retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog

from raxx_queue.billing.reconcile import reconcile_context, reconcile_stripe_customer
from raxx_queue.db.events import known_event_ids, record_thin_event
from raxx_queue.db.pool import Database
from raxx_queue.metrics import THIN_EVENTS
from raxx_queue.plans import price_tiers
from raxx_queue.settings import Settings
from raxx_queue.stripe_errors import StripeNotConfigured, StripeObjectMissing
from raxx_queue.stripe_gateway import StripeGateway, ThinEvent
from raxx_queue.webhooks.changes import EVENT_BUILDERS
from raxx_queue.webhooks.errors import InvalidEvent
from raxx_queue.webhooks.intake import is_other_mode, verify_delivery
from raxx_queue.webhooks.pipeline import EventContext, apply_stripe_event

log = structlog.get_logger(__name__)

Json = dict[str, Any]
EVENT_GENERATION_FAILURE_RESOLVED = "v2.core.health.event_generation_failure.resolved"
# the v1 objects whose thin events Queue acts on (related_object.type)
THIN_OBJECTS = frozenset({"customer", "subscription", "invoice", "dispute"})
# a related object's type, from its id, when Stripe names only the id
_TYPE_BY_PREFIX = {"cus_": "customer", "sub_": "subscription", "in_": "invoice", "dp_": "dispute"}


@dataclass(frozen=True)
class ThinResult:
    """What became of one notification (the route's answer)."""

    event_id: str
    event_type: str
    outcome: str  # applied, duplicate, stale, ignored
    snapshot_event_id: str | None = None
    reconciled: Json | None = None  # {checked, drifted} when an object was reconciled


@dataclass(frozen=True)
class _Handled:
    kind: str  # snapshot, health, unknown (the metric's label)
    outcome: str
    snapshot_event_id: str | None = None
    reconciled: Json | None = None


async def receive_thin_event(
    db: Database,
    stripe: StripeGateway | None,
    settings: Settings,
    payload: bytes,
    signature: str | None,
    request_id: str | None,
) -> ThinResult:
    """Verify with the thin endpoint's secrets, parse with the SDK, act, record."""
    verify_delivery(
        payload,
        signature,
        settings.thin_webhook_secrets(),
        settings.stripe_webhook_tolerance_seconds,
        endpoint="thin",
    )
    if stripe is None:
        raise StripeNotConfigured()
    thin = _parse(stripe, payload)
    created = _created(thin)
    async with db.connection() as conn:
        if await known_event_ids(conn, [thin.id]):
            THIN_EVENTS.labels(kind=_kind(thin), outcome="duplicate").inc()
            return ThinResult(thin.id, thin.type, "duplicate")
    if is_other_mode(thin.livemode, settings):
        # the other Stripe mode's notification: recorded, nothing read or applied
        log.warning("thin_event_other_mode_ignored", event_id=thin.id, type=thin.type)
        handled = _Handled(kind=_kind(thin), outcome="ignored")
    else:
        handled = await ThinHandler(db, stripe, settings, thin, request_id).handle()
    async with db.connection() as conn:
        await record_thin_event(
            conn,
            event_id=thin.id,
            event_type=thin.type,
            outcome="ignored" if handled.outcome == "duplicate" else handled.outcome,
            stripe_customer_id=None,
            created=created,
            livemode=thin.livemode,
            request_id=request_id,
            payload=_recorded(thin),
        )
    THIN_EVENTS.labels(kind=handled.kind, outcome=handled.outcome).inc()
    log.info(
        "thin_event",
        event_id=thin.id,
        type=thin.type,
        outcome=handled.outcome,
        snapshot_event_id=handled.snapshot_event_id,
    )
    return ThinResult(
        thin.id, thin.type, handled.outcome, handled.snapshot_event_id, handled.reconciled
    )


def _parse(stripe: StripeGateway, payload: bytes) -> ThinEvent:
    try:
        return stripe.parse_thin_event(payload)
    except ValueError:
        # a snapshot event sent here means the destination's payload style is wrong
        log.warning("thin_event_unreadable", bytes=len(payload))
        raise InvalidEvent("not a thin event notification (object v2.core.event)") from None


def _created(thin: ThinEvent) -> datetime:
    try:
        created = datetime.fromisoformat(thin.created)
    except (TypeError, ValueError):
        raise InvalidEvent("thin event has no valid created time") from None
    if created.tzinfo is None:
        raise InvalidEvent("thin event has no valid created time")
    return created


def _kind(thin: ThinEvent) -> str:
    if thin.type == EVENT_GENERATION_FAILURE_RESOLVED:
        return "health"
    return "snapshot" if _acts_on_snapshot(thin) else "unknown"


def _acts_on_snapshot(thin: ThinEvent) -> bool:
    if not thin.type.startswith("v1."):
        return False
    related_type = thin.related_object[1] if thin.related_object else None
    return thin.type.removeprefix("v1.") in EVENT_BUILDERS or related_type in THIN_OBJECTS


def _recorded(thin: ThinEvent) -> Json:
    """The notification as recorded: ids and types only (it carries no PII)."""
    related = thin.related_object
    return {
        "id": thin.id,
        "object": "v2.core.event",
        "type": thin.type,
        "created": thin.created,
        "livemode": thin.livemode,
        "related_object": {"id": related[0], "type": related[1]} if related else None,
    }


@dataclass
class ThinHandler:
    db: Database
    stripe: StripeGateway
    settings: Settings
    thin: ThinEvent
    request_id: str | None

    async def handle(self) -> _Handled:
        thin = self.thin
        if thin.context is not None:
            # an event of another (connected) account: not Queue's to apply
            log.warning("thin_event_other_account", event_id=thin.id, type=thin.type)
            return _Handled("unknown", "ignored")
        if thin.type == EVENT_GENERATION_FAILURE_RESOLVED:
            return await self._generation_failure()
        if _acts_on_snapshot(thin):
            return await self._snapshot()
        return _Handled("unknown", "ignored")

    async def _snapshot(self) -> _Handled:
        full = await self.stripe.retrieve_v2_event(self.thin.id)
        snapshot_id = full.get("snapshot_event")
        if isinstance(snapshot_id, str) and snapshot_id:
            try:
                event = await self.stripe.retrieve_event(snapshot_id)
            except StripeObjectMissing:
                log.warning("thin_snapshot_missing", snapshot_event_id=snapshot_id)
            else:
                context = EventContext(
                    price_tiers=price_tiers(self.settings),
                    grace_days=self.settings.grace_period_days,
                    dispute_access=self.settings.dispute_access,
                    source="thin",
                    request_id=self.request_id,
                )
                result = await apply_stripe_event(self.db, event, context, self.stripe)
                return _Handled("snapshot", result.outcome, snapshot_event_id=snapshot_id)
        related = self.thin.related_object
        if related is None:
            return _Handled("snapshot", "ignored")
        return await self._reconcile("snapshot", related[0], related[1])

    async def _generation_failure(self) -> _Handled:
        full = await self.stripe.retrieve_v2_event(self.thin.id)
        data = full.get("data")
        impact = data.get("impact") if isinstance(data, dict) else None
        impact = impact if isinstance(impact, dict) else {}
        related = impact.get("related_object")
        related = related if isinstance(related, dict) else {}
        object_id = related.get("id") or impact.get("related_object_id")
        if not isinstance(object_id, str) or not object_id:
            log.warning("thin_health_without_object", event_id=self.thin.id)
            return _Handled("health", "ignored")
        object_type = related.get("type") or _type_of(object_id)
        log.warning(
            "stripe_event_generation_failed",
            event_id=self.thin.id,
            failed_type=impact.get("event_type"),
            object_type=object_type,
            object_id=object_id,
        )
        return await self._reconcile("health", object_id, str(object_type))

    async def _reconcile(self, kind: str, object_id: str, object_type: str) -> _Handled:
        """Re-read the customer the object belongs to and repair what differs."""
        customer_id = await self._customer_of(object_id, object_type)
        if customer_id is None:
            log.warning("thin_object_not_reconcilable", object_type=object_type, kind=kind)
            return _Handled(kind, "ignored")
        context = reconcile_context(price_tiers(self.settings), self.settings.grace_period_days)
        # the notification's id names the run: a second delivery finds no drift left
        report = await reconcile_stripe_customer(
            self.db, self.stripe, customer_id, context, self.thin.id
        )
        summary = {"checked": report.checked, "drifted": report.drifted}
        return _Handled(kind, "applied", reconciled=summary)

    async def _customer_of(self, object_id: str, object_type: str) -> str | None:
        if object_type == "customer":
            return object_id
        if object_type == "subscription":
            owner = (await self.stripe.retrieve_subscription(object_id)).get("customer")
        elif object_type == "invoice":
            owner = (await self.stripe.retrieve_invoice(object_id)).get("customer")
        else:
            return None
        if isinstance(owner, dict):
            owner = owner.get("id")
        return owner if isinstance(owner, str) else None


def _type_of(object_id: str) -> str:
    return next((t for p, t in _TYPE_BY_PREFIX.items() if object_id.startswith(p)), "unknown")
