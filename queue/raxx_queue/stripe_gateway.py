"""The only module that talks to Stripe: a thin async client over the official SDK.

Every method returns plain dicts (`StripeObject.to_dict()`) and raises the
`raxx_queue.stripe_errors.StripeGatewayError` subclasses, which are `ServiceError`s carrying
the HTTP answer the service gives for them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import stripe
import stripe.events
import stripe.params
import stripe.params.billing_portal
import stripe.params.checkout

from raxx_queue.settings import Settings
from raxx_queue.stripe_errors import mapped_errors
from raxx_queue.stripe_http import TransportHTTPXClient

# The API version our readers of Stripe objects are written against (current shape:
# periods on subscription items, invoice.confirmation_secret). Changing it is a code change.
STRIPE_API_VERSION = "2026-10-28.endive"
MAX_NETWORK_RETRIES = 2
# Heroku's router gives a request 30 s: three attempts of one call must fit well inside it.
TIMEOUT = httpx.Timeout(8.0, connect=3.0)
SUBSCRIPTION_EXPAND = ("latest_invoice.confirmation_secret", "pending_setup_intent")

Obj = dict[str, Any]

__all__ = ["STRIPE_API_VERSION", "StripeGateway", "ThinEvent", "TransportHTTPXClient"]


@dataclass(frozen=True)
class StripePage:
    """One page of a Stripe list: objects in Stripe's order, and whether more follow."""

    data: list[Obj]
    has_more: bool


@dataclass(frozen=True)
class ThinEvent:
    """A thin event notification: what it is about, not the object itself."""

    id: str
    type: str
    created: str  # RFC 3339
    livemode: bool
    context: str | None  # a connected account's context, if any
    related_object: tuple[str, str] | None  # (id, type), e.g. ("sub_…", "subscription")
    typed: bool  # the SDK knows this type


def _key(idempotency_key: str) -> stripe.RequestOptions:
    return {"idempotency_key": idempotency_key}


class StripeGateway:
    """Typed async calls to Stripe; writes require an idempotency key from the caller."""

    def __init__(self, client: stripe.StripeClient, http_client: TransportHTTPXClient) -> None:
        self._client = client
        self._v1 = client.v1
        self._http_client = http_client

    async def aclose(self) -> None:
        await self._http_client.close_async()

    # customers

    async def create_customer(
        self, *, queue_customer_id: str, email: str | None, name: str | None, idempotency_key: str
    ) -> Obj:
        params: stripe.params.CustomerCreateParams = {
            "metadata": {"queue_customer_id": queue_customer_id}
        }
        if email is not None:
            params["email"] = email
        if name is not None:
            params["name"] = name
        with mapped_errors("customers.create", input_params=frozenset({"email", "name"})):
            customer = await self._v1.customers.create_async(params, _key(idempotency_key))
        return customer.to_dict()

    async def retrieve_customer(self, customer_id: str) -> Obj:
        with mapped_errors("customers.retrieve"):
            return (await self._v1.customers.retrieve_async(customer_id)).to_dict()

    async def delete_customer(self, customer_id: str, *, idempotency_key: str) -> Obj:
        """Delete the customer at Stripe (its subscriptions end at once)."""
        with mapped_errors("customers.delete"):
            deleted = await self._v1.customers.delete_async(
                customer_id, options=_key(idempotency_key)
            )
        return deleted.to_dict()

    async def search_customers(self, queue_customer_id: str) -> list[Obj]:
        """Customers whose metadata names this queue customer (Stripe's search lags ~1 min)."""
        query = f"metadata['queue_customer_id']:'{queue_customer_id}'"
        with mapped_errors("customers.search"):
            found = await self._v1.customers.search_async({"query": query, "limit": 10})
        return [customer.to_dict() for customer in found.data]

    async def attach_payment_method(
        self, payment_method_id: str, *, customer_id: str, idempotency_key: str
    ) -> Obj:
        # the payment method is the caller's: whatever Stripe rejects here is theirs to fix
        with mapped_errors("payment_methods.attach", blame_caller=True):
            method = await self._v1.payment_methods.attach_async(
                payment_method_id, {"customer": customer_id}, _key(idempotency_key)
            )
        return method.to_dict()

    async def set_default_payment_method(
        self, customer_id: str, payment_method_id: str, *, idempotency_key: str
    ) -> Obj:
        params: stripe.params.CustomerUpdateParams = {
            "invoice_settings": {"default_payment_method": payment_method_id}
        }
        with mapped_errors("customers.update", input_params=frozenset({"invoice_settings"})):
            customer = await self._v1.customers.update_async(
                customer_id, params, _key(idempotency_key)
            )
        return customer.to_dict()

    # subscriptions and invoices

    async def create_subscription(
        self, *, customer_id: str, price_id: str, queue_customer_id: str, idempotency_key: str
    ) -> Obj:
        """An `incomplete` subscription whose first invoice's client secret is expanded."""
        params: stripe.params.SubscriptionCreateParams = {
            "customer": customer_id,
            "items": [{"price": price_id}],
            "payment_behavior": "default_incomplete",
            "expand": list(SUBSCRIPTION_EXPAND),
            "metadata": {"queue_customer_id": queue_customer_id},
        }
        with mapped_errors("subscriptions.create"):
            subscription = await self._v1.subscriptions.create_async(params, _key(idempotency_key))
        return subscription.to_dict()

    async def retrieve_subscription(self, subscription_id: str) -> Obj:
        with mapped_errors("subscriptions.retrieve"):
            return (await self._v1.subscriptions.retrieve_async(subscription_id)).to_dict()

    async def list_subscriptions(self, customer_id: str) -> list[Obj]:
        """Every subscription of the customer, canceled ones included, newest first."""
        params: stripe.params.SubscriptionListParams = {
            "customer": customer_id,
            "status": "all",
            "limit": 100,
        }
        with mapped_errors("subscriptions.list"):
            page = await self._v1.subscriptions.list_async(params)
            return [sub.to_dict() async for sub in page.auto_paging_iter()]

    async def list_invoices(self, customer_id: str, *, limit: int = 10) -> list[Obj]:
        """The customer's most recent invoices (at most `limit`, ≤ 100), newest first."""
        with mapped_errors("invoices.list"):
            page = await self._v1.invoices.list_async({"customer": customer_id, "limit": limit})
        return [invoice.to_dict() for invoice in page.data]

    async def retrieve_invoice(self, invoice_id: str) -> Obj:
        with mapped_errors("invoices.retrieve"):
            return (await self._v1.invoices.retrieve_async(invoice_id)).to_dict()

    async def retrieve_charge(self, charge_id: str) -> Obj:
        with mapped_errors("charges.retrieve"):
            return (await self._v1.charges.retrieve_async(charge_id)).to_dict()

    # Checkout and the Customer Portal

    async def create_checkout_session(
        self,
        *,
        queue_customer_id: str,
        price_id: str,
        customer_id: str | None,
        customer_email: str,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
    ) -> Obj:
        """A subscription-mode session; `customer` when known, else `customer_email`."""
        params: stripe.params.checkout.SessionCreateParams = {
            "mode": "subscription",
            "line_items": [{"price": price_id, "quantity": 1}],
            "client_reference_id": queue_customer_id,
            "success_url": success_url,
            "cancel_url": cancel_url,
            "metadata": {"queue_customer_id": queue_customer_id},
            "subscription_data": {"metadata": {"queue_customer_id": queue_customer_id}},
        }
        if customer_id is not None:
            params["customer"] = customer_id
        else:
            params["customer_email"] = customer_email
        inputs = frozenset({"success_url", "cancel_url", "customer_email"})
        with mapped_errors("checkout.sessions.create", input_params=inputs):
            session = await self._v1.checkout.sessions.create_async(params, _key(idempotency_key))
        return session.to_dict()

    async def create_portal_session(
        self, *, customer_id: str, return_url: str | None, idempotency_key: str
    ) -> Obj:
        params: stripe.params.billing_portal.SessionCreateParams = {"customer": customer_id}
        if return_url is not None:
            params["return_url"] = return_url
        with mapped_errors(
            "billing_portal.sessions.create", input_params=frozenset({"return_url"})
        ):
            session = await self._v1.billing_portal.sessions.create_async(
                params, _key(idempotency_key)
            )
        return session.to_dict()

    # events

    async def list_events(
        self,
        *,
        created_gte: int | None = None,
        created_lt: int | None = None,
        starting_after: str | None = None,
        limit: int = 100,
        types: list[str] | None = None,
        delivery_success: bool | None = None,
    ) -> StripePage:
        """One page of events, newest first; pass the last id as `starting_after` for more."""
        params: stripe.params.EventListParams = {"limit": limit}
        created: stripe.params.EventListParamsCreated = {}
        if created_gte is not None:
            created["gte"] = created_gte
        if created_lt is not None:
            created["lt"] = created_lt
        if created:
            params["created"] = created
        if starting_after is not None:
            params["starting_after"] = starting_after
        if types:
            params["types"] = types
        if delivery_success is not None:
            params["delivery_success"] = delivery_success
        with mapped_errors("events.list"):
            page = await self._v1.events.list_async(params)
        return StripePage(data=[event.to_dict() for event in page.data], has_more=page.has_more)

    async def retrieve_event(self, event_id: str) -> Obj:
        with mapped_errors("events.retrieve"):
            return (await self._v1.events.retrieve_async(event_id)).to_dict()

    # event destinations (thin events)

    def parse_thin_event(self, payload: bytes) -> ThinEvent:
        """A thin event notification read by the SDK; its signature is checked already.

        A type whose typed class finds a field missing is read as the SDK reads types it
        does not know. ValueError when it is not a notification at all.
        """
        text = payload.decode("utf-8")
        notification: stripe.v2.core.EventNotification
        try:
            notification = self._client.parse_event_notification_without_verification(text)
        except RecursionError as error:  # nested beyond what any notification is
            raise ValueError("not a thin event notification") from error
        except (KeyError, TypeError, AttributeError):
            try:
                parsed = orjson.loads(text)
                notification = stripe.events.UnknownEventNotification(parsed, self._client)
            except (KeyError, TypeError, AttributeError, orjson.JSONDecodeError) as error:
                raise ValueError("not a thin event notification") from error
        related = getattr(notification, "related_object", None)
        return ThinEvent(
            id=notification.id,
            type=notification.type,
            created=notification.created,
            livemode=notification.livemode,
            context=str(notification.context) if notification.context else None,
            related_object=(related.id, related.type) if related is not None else None,
            typed=not isinstance(notification, stripe.events.UnknownEventNotification),
        )

    async def retrieve_v2_event(self, event_id: str) -> Obj:
        """The full v2 event behind a thin notification (`snapshot_event`, `data`)."""
        with mapped_errors("v2.core.events.retrieve"):
            return (await self._client.v2.core.events.retrieve_async(event_id)).to_dict()


def build_stripe_gateway(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None
) -> StripeGateway | None:
    """The gateway for the configured key, or None when no key is configured.

    `transport` replaces the network (tests pass the Stripe double's).
    """
    key = settings.stripe_api_key
    if key is None:
        return None
    # The SDK logs request and response bodies (PII, client secrets) at DEBUG and Stripe's
    # error messages at INFO; the gateway logs what operators need itself.
    logging.getLogger("stripe").setLevel(logging.WARNING)
    http_client = TransportHTTPXClient(
        httpx.AsyncClient(transport=transport, timeout=TIMEOUT), timeout=TIMEOUT
    )
    api_base = str(settings.stripe_api_base).rstrip("/") if settings.stripe_api_base else None
    client = stripe.StripeClient(
        key.get_secret_value(),
        http_client=http_client,
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=MAX_NETWORK_RETRIES,
        stripe_version=STRIPE_API_VERSION,
    )
    return StripeGateway(client, http_client)
