"""Stripe-hosted pages: Checkout Sessions (subscription mode) and Customer Portal sessions."""

from __future__ import annotations

import time

from pydantic import HttpUrl

from raxx_queue.billing.context import BillingContext
from raxx_queue.billing.customers import read_state
from raxx_queue.billing.errors import SubscriptionAlreadyActive
from raxx_queue.billing.flow_schemas import (
    CheckoutRequest,
    CheckoutResponse,
    PortalRequest,
    PortalResponse,
)
from raxx_queue.billing.idempotency import checkout_key, portal_key
from raxx_queue.db.locks import lock_queue_customer, lock_stripe_customer
from raxx_queue.errors import NotFound, ValidationFailed
from raxx_queue.plans import price_for
from raxx_queue.settings import Environment, Settings

HTTPS_ONLY = (Environment.STAGING, Environment.PRODUCTION)


def redirect_url(
    settings: Settings, given: HttpUrl | None, default: HttpUrl | None, *, field: str
) -> str | None:
    """The request's URL, else the configured default; https only in staging and production;
    a request's URL only to an allowed host (no open redirect through Stripe's pages)."""
    url = given or default
    if url is not None and settings.queue_env in HTTPS_ONLY and url.scheme != "https":
        raise ValidationFailed(f"{field}: must be an https URL")
    if given is not None and (given.host or "").lower() not in settings.redirect_hosts():
        raise ValidationFailed(f"{field}: host not allowed (REDIRECT_ALLOWED_HOSTS)")
    return str(url) if url is not None else None


def required_redirect_url(
    settings: Settings, given: HttpUrl | None, default: HttpUrl | None, *, field: str, variable: str
) -> str:
    url = redirect_url(settings, given, default, field=field)
    if url is None:
        raise ValidationFailed(f"{field}: required, as {variable} is not configured")
    return url


async def create_checkout(ctx: BillingContext, body: CheckoutRequest) -> CheckoutResponse:
    """A Checkout Session; its completion webhook links the customer by client_reference_id."""
    queue_customer_id, tier, settings = body.queue_customer_id, body.plan_tier, ctx.settings
    price_id = price_for(settings, tier)
    gateway = ctx.gateway()
    success_url = required_redirect_url(
        settings,
        body.success_url,
        settings.checkout_success_url,
        field="success_url",
        variable="CHECKOUT_SUCCESS_URL",
    )
    cancel_url = required_redirect_url(
        settings,
        body.cancel_url,
        settings.checkout_cancel_url,
        field="cancel_url",
        variable="CHECKOUT_CANCEL_URL",
    )
    state = await read_state(ctx, queue_customer_id)
    if state is not None and state.blocking_subscription_id is not None:
        raise SubscriptionAlreadyActive(state.blocking_subscription_id)
    customer_id = state.live_stripe_customer_id if state is not None else None

    key = checkout_key(
        queue_customer_id,
        tier,
        customer=customer_id or body.email,
        success_url=success_url,
        cancel_url=cancel_url,
    )
    session = await gateway.create_checkout_session(
        queue_customer_id=queue_customer_id,
        price_id=price_id,
        customer_id=customer_id,
        customer_email=body.email,
        success_url=success_url,
        cancel_url=cancel_url,
        idempotency_key=key,
    )

    async with ctx.db.transaction() as tx:
        await lock_queue_customer(tx.conn, queue_customer_id)
        await ctx.record_once(
            tx,
            action="checkout.session.create",
            queue_customer_id=queue_customer_id,
            stripe_object_id=session["id"],
            summary={"stripe_customer_id": customer_id, "plan_tier": tier, "price_id": price_id},
        )
    return CheckoutResponse(session_id=session["id"], url=session["url"])


async def create_portal(ctx: BillingContext, body: PortalRequest) -> PortalResponse:
    """A Customer Portal session for the customer's Stripe customer."""
    queue_customer_id, settings = body.queue_customer_id, ctx.settings
    gateway = ctx.gateway()
    return_url = redirect_url(
        settings, body.return_url, settings.portal_return_url, field="return_url"
    )
    state = await read_state(ctx, queue_customer_id)
    customer_id = state.live_stripe_customer_id if state is not None else None
    if customer_id is None:
        raise NotFound("no Stripe customer for that queue_customer_id", code="CUSTOMER_NOT_FOUND")
    session = await gateway.create_portal_session(
        customer_id=customer_id,
        return_url=return_url,
        idempotency_key=portal_key(customer_id, return_url, now=time.time()),
    )

    async with ctx.db.transaction() as tx:
        await lock_stripe_customer(tx.conn, customer_id)
        await ctx.record_once(
            tx,
            action="portal.session.create",
            queue_customer_id=queue_customer_id,
            stripe_object_id=session["id"],
            summary={"stripe_customer_id": customer_id},
        )
    return PortalResponse(url=session["url"])
