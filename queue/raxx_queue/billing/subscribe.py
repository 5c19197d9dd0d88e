"""Subscribe: Stripe customer, default payment method, an incomplete subscription; rows."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from raxx_queue.billing.context import BillingContext
from raxx_queue.billing.customers import ensure_stripe_customer, link_and_audit, read_state
from raxx_queue.billing.errors import SubscriptionAlreadyActive
from raxx_queue.billing.flow_schemas import SubscribeRequest, SubscribeResponse
from raxx_queue.billing.idempotency import attach_key, default_payment_method_key, subscribe_key
from raxx_queue.db.subscriptions import store_subscription
from raxx_queue.mirror.rows import refresh_mirror
from raxx_queue.plans import price_for, price_tiers
from raxx_queue.webhooks.changes import subscription_fields


async def subscribe(ctx: BillingContext, body: SubscribeRequest) -> SubscribeResponse:
    """Every Stripe write is keyed by the operation, so a repeat returns the same objects.

    Rows are written in one transaction once Stripe has answered every call: when a call
    fails, nothing local changes (the Stripe customer, if created, is linked by its webhook
    or by the next attempt, which replays it). The subscription is stored as the webhook
    stores one (one parser, one SQL function), as of its own creation: a webhook of the
    same second or later knows at least as much, and its row stands.
    """
    queue_customer_id, tier = body.queue_customer_id, body.plan_tier
    price_id = price_for(ctx.settings, tier)
    gateway = ctx.gateway()
    state = await read_state(ctx, queue_customer_id)
    if state is not None and state.blocking_subscription_id is not None:
        raise SubscriptionAlreadyActive(state.blocking_subscription_id)

    customer = await ensure_stripe_customer(
        gateway, queue_customer_id, state, email=body.email, name=body.name
    )
    method = await gateway.attach_payment_method(
        body.payment_method_id,
        customer_id=customer.id,
        idempotency_key=attach_key(customer.id, body.payment_method_id),
    )
    await gateway.set_default_payment_method(
        customer.id,
        method["id"],
        idempotency_key=default_payment_method_key(customer.id, method["id"]),
    )
    subscription = await gateway.create_subscription(
        customer_id=customer.id,
        price_id=price_id,
        queue_customer_id=queue_customer_id,
        idempotency_key=subscribe_key(queue_customer_id, tier, body.payment_method_id),
    )

    fields = subscription_fields(subscription, price_tiers(ctx.settings))
    async with ctx.db.transaction() as tx:
        await link_and_audit(tx, ctx, queue_customer_id, customer, email=body.email, name=body.name)
        stored = await store_subscription(
            tx.conn,
            fields,
            # never later than now: under a Stripe test clock (or the simulator's
            # `advance`) `created` runs ahead of the events, which are stamped in real time
            as_of=datetime.fromtimestamp(min(subscription["created"], int(time.time())), UTC),
            on_tie="keep",
            grace_days=ctx.settings.grace_period_days,
        )
        await ctx.record_once(
            tx,
            action="subscription.create",
            queue_customer_id=queue_customer_id,
            stripe_object_id=fields["stripe_subscription_id"],
            summary={
                "stripe_customer_id": customer.id,
                "plan_tier": fields["plan_tier"],
                "price_id": fields["price_id"],
                "status": fields["status"],
                # a newer or same-second row a webhook wrote is kept either way
                "stored": "kept" if stored == "stale" else stored,
            },
        )
        await refresh_mirror(tx, queue_customer_id, ctx.actor, ctx.request_id)
    return SubscribeResponse(
        subscription_id=fields["stripe_subscription_id"],
        status=subscription["status"],
        client_secret=client_secret_of(subscription),
    )


def client_secret_of(subscription: dict[str, Any]) -> str | None:
    """The secret the client confirms the first payment (or card setup) with, if any."""
    invoice = subscription.get("latest_invoice")
    if isinstance(invoice, dict):
        secret = (invoice.get("confirmation_secret") or {}).get("client_secret")
        if secret:
            return str(secret)
        # before 2025-03-31.basil the invoice carried its payment intent
        intent = invoice.get("payment_intent")
        if isinstance(intent, dict) and intent.get("client_secret"):
            return str(intent["client_secret"])
    # nothing to pay now (a trial): the card is confirmed through the setup intent
    setup = subscription.get("pending_setup_intent")
    if isinstance(setup, dict) and setup.get("client_secret"):
        return str(setup["client_secret"])
    return None
