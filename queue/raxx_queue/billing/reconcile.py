"""Reconcile: re-read customers from Stripe, repair drift through the webhook's own SQL.

Each object Stripe returns is compared with Queue's row; only objects that differ
are applied, as a synthetic event (source `reconcile`, actor `reconcile`, created
now) through billing_apply_stripe_event - the same upsert, ordering guard, mirror
and audit code as a webhook. A second run over unchanged data finds no drift and
writes nothing.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from raxx_queue.billing.errors import NoStripeCustomer
from raxx_queue.db import reconcile as sql
from raxx_queue.db.customers import fetch_stripe_customer_id
from raxx_queue.db.pool import Database
from raxx_queue.errors import CustomerNotFound
from raxx_queue.stripe_gateway import StripeGateway
from raxx_queue.webhooks.changes import (
    EventChange,
    customer_change,
    invoice_change,
    subscription_change,
)
from raxx_queue.webhooks.pipeline import EventContext, apply_stripe_event

Json = dict[str, Any]
RECENT_INVOICES = 10

SUBSCRIPTION_FIELDS = (
    "status",
    "price_id",
    "plan_tier",
    "current_period_end",
    "cancel_at_period_end",
    "trial_end",
    "canceled_at",
    "ended_at",
    # paused collection decides access (docs/access-policy.md)
    "pause_behavior",
)
CUSTOMER_FIELDS = ("email", "name", "deleted")
INVOICE_FIELDS = ("stripe_subscription_id", "status", "amount_due", "amount_paid")
EPOCH_FIELDS = frozenset({"current_period_end", "trial_end", "canceled_at", "ended_at"})


@dataclass
class ReconcileReport:
    checked: int = 0
    drifted: int = 0
    changes: list[Json] = field(default_factory=list)

    def add(self, other: ReconcileReport) -> None:
        self.checked += other.checked
        self.drifted += other.drifted
        self.changes += other.changes

    def as_dict(self) -> Json:
        return {"checked": self.checked, "drifted": self.drifted, "changes": self.changes}


def _comparable(name: str, value: Any) -> Any:
    if name in EPOCH_FIELDS and isinstance(value, int):
        return datetime.fromtimestamp(value, UTC)
    return value


def _differences(local: Json | None, change: Json, fields: tuple[str, ...]) -> dict[str, Json]:
    """field → {queue, stripe} for every field that differs (all of them if missing)."""
    diffs = {}
    for name in fields:
        stripe_value = _comparable(name, change.get(name))
        queue_value = None if local is None else local.get(name)
        if local is None or queue_value != stripe_value:
            diffs[name] = {"queue": _plain(queue_value), "stripe": _plain(stripe_value)}
    return diffs


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


@dataclass(frozen=True)
class _Candidate:
    kind: str
    event_type: str
    obj: Json
    change: EventChange
    differences: dict[str, Json]


def _candidates(
    stripe_customer: Json,
    subscriptions: list[Json],
    invoices: list[Json],
    local: Json,
    tiers: Mapping[str, str],
) -> list[_Candidate]:
    found: list[_Candidate] = []
    deleted = bool(stripe_customer.get("deleted"))
    event_type = "customer.deleted" if deleted else "customer.updated"
    change = customer_change(event_type, stripe_customer, tiers)
    local_customer = local["customer"]
    # an erased customer's e-mail and name are not Queue's to hold, whatever Stripe has
    erased = bool(local_customer and local_customer.get("erased"))
    fields = ("deleted",) if deleted or erased else CUSTOMER_FIELDS
    diffs = _differences(local_customer, change.change, fields)
    if diffs:
        # PII never goes into the report or the audit log: name the fields only
        redacted = {k: {"changed": True} for k in diffs} if not deleted else diffs
        found.append(_Candidate("customer", event_type, stripe_customer, change, redacted))
    for sub in subscriptions:
        change = subscription_change("customer.subscription.updated", sub, tiers)
        local_sub = local["subscriptions"].get(change.object_id)
        diffs = _differences(local_sub, change.change, SUBSCRIPTION_FIELDS)
        if diffs:
            found.append(
                _Candidate("subscription", "customer.subscription.updated", sub, change, diffs)
            )
    for invoice in invoices:
        change = invoice_change("invoice.updated", invoice, tiers)
        if change.object_id is None:
            continue
        diffs = _differences(local["invoices"].get(change.object_id), change.change, INVOICE_FIELDS)
        if diffs:
            found.append(_Candidate("invoice", "invoice.updated", invoice, change, diffs))
    return found


async def reconcile_stripe_customer(
    db: Database,
    stripe: StripeGateway,
    stripe_customer_id: str,
    context: EventContext,
    run_id: str,
) -> ReconcileReport:
    """Compare one Stripe customer with Queue and repair what differs."""
    customer = await stripe.retrieve_customer(stripe_customer_id)
    subscriptions = (
        [] if customer.get("deleted") else (await stripe.list_subscriptions(stripe_customer_id))
    )
    invoices = (
        []
        if customer.get("deleted")
        else (await stripe.list_invoices(stripe_customer_id, limit=RECENT_INVOICES))
    )
    invoice_ids = [str(i["id"]) for i in invoices if i.get("id")]
    async with db.connection() as conn:
        local = await sql.local_state(conn, stripe_customer_id, invoice_ids)
    report = ReconcileReport(checked=1)
    now = int(time.time())
    queue_customer_id = (local["customer"] or {}).get("queue_customer_id")
    for candidate in _candidates(customer, subscriptions, invoices, local, context.price_tiers):
        event = {
            "id": f"reconcile:{run_id}:{candidate.change.object_id}",
            "type": candidate.event_type,
            "created": now,
            "data": {"object": candidate.obj},
            "livemode": bool(candidate.obj.get("livemode")),
        }
        await apply_stripe_event(db, event, context, stripe)
        report.changes.append(
            {
                "queue_customer_id": queue_customer_id,
                "stripe_customer_id": stripe_customer_id,
                "object": candidate.kind,
                "id": candidate.change.object_id,
                "fields": candidate.differences,
            }
        )
    report.drifted = 1 if report.changes else 0
    return report


def reconcile_context(price_tiers: Mapping[str, str], grace_days: int) -> EventContext:
    return EventContext(
        price_tiers=price_tiers,
        grace_days=grace_days,
        source="reconcile",
        actor="reconcile",
        action="reconcile.repair",
    )


async def reconcile_one(
    db: Database, stripe: StripeGateway, context: EventContext, queue_customer_id: str
) -> ReconcileReport:
    async with db.connection() as conn:
        exists, stripe_customer_id = await fetch_stripe_customer_id(conn, queue_customer_id)
    if not exists:
        raise CustomerNotFound()
    if stripe_customer_id is None:
        raise NoStripeCustomer()
    return await reconcile_stripe_customer(
        db, stripe, stripe_customer_id, context, uuid.uuid4().hex[:12]
    )
