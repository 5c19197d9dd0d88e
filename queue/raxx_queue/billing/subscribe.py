"""Subscribe: Stripe customer, default payment method, an incomplete subscription; rows."""

from __future__ import annotations

from raxx_queue.billing.audit_trail import record_once
from raxx_queue.billing.context import BillingContext
from raxx_queue.billing.customers import ensure_stripe_customer, link_and_audit, read_state
from raxx_queue.billing.errors import SubscriptionAlreadyActive
from raxx_queue.billing.flow_schemas import SubscribeRequest, SubscribeResponse
from raxx_queue.billing.idempotency import attach_key, default_payment_method_key, subscribe_key
from raxx_queue.billing.plans import price_for
from raxx_queue.billing.stripe_shapes import client_secret_of, subscription_row
from raxx_queue.db.subscriptions import upsert_subscription
from raxx_queue.mirror.rows import refresh_mirror


async def subscribe(ctx: BillingContext, body: SubscribeRequest) -> SubscribeResponse:
    """Every Stripe write is keyed by the operation, so a repeat returns the same objects.

    Rows are written in one transaction once Stripe has answered every call: when a call
    fails, nothing local changes (the Stripe customer, if created, is linked by its webhook
    or by the next attempt, which replays it).
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

    row = subscription_row(subscription, ctx.settings.price_tiers())
    async with ctx.db.transaction() as conn:
        link = await link_and_audit(
            conn, ctx, queue_customer_id, customer, email=body.email, name=body.name
        )
        stored = await upsert_subscription(conn, row)
        audited = await record_once(
            conn,
            ctx,
            action="subscription.create",
            queue_customer_id=queue_customer_id,
            stripe_object_id=row.stripe_subscription_id,
            summary={
                "stripe_customer_id": customer.id,
                "plan_tier": row.plan_tier,
                "price_id": row.price_id,
                "status": row.status,
                "stored": stored,
            },
        )
        mirror = await refresh_mirror(conn, queue_customer_id)
    if audited or link.created or link.linked:
        ctx.audit_wakeup.nudge()
    if mirror.changed:
        ctx.mirror_wakeup.nudge()
    return SubscribeResponse(
        subscription_id=row.stripe_subscription_id,
        status=subscription["status"],
        client_secret=client_secret_of(subscription),
    )
