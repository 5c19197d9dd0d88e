"""The SDK's httpx client over a caller-provided `httpx.AsyncClient`, as production builds it.

`TransportHTTPXClient` is the production class (`raxx_queue.stripe_gateway`), re-exported so
the double and its tests wire the SDK exactly as the service does. `InstantRetryHTTPXClient`
adds what only tests want: the SDK's retry backoff runs at once and is recorded.
`make_stripe_client(double)` builds the SDK's client on the double this way.

Wiring: `stripe.HTTPXClient` takes no transport, so `TransportHTTPXClient` (production's class,
from `raxx_queue.stripe_gateway`) swaps in an `httpx.AsyncClient` built on `double.transport`. The
gateway builds its client the same way; `create_app(settings, stripe_transport=...)` passes it::

    http = httpx.AsyncClient(transport=double.transport)        # transport=None in production
    client = stripe.StripeClient(
        "sk_test_queue",
        http_client=TransportHTTPXClient(http),
        base_addresses={"api": STRIPE_DOUBLE_API_BASE},           # STRIPE_API_BASE when set
        max_network_retries=0,
    )
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TYPE_CHECKING

import httpx
import stripe

from raxx_queue.stripe_gateway import TransportHTTPXClient

if TYPE_CHECKING:
    from raxx_queue.simulator.double import StripeDouble

__all__ = [
    "STRIPE_DOUBLE_API_BASE",
    "InstantRetryHTTPXClient",
    "TransportHTTPXClient",
    "make_stripe_client",
]

# where the SDK believes Stripe is when it talks to the double
STRIPE_DOUBLE_API_BASE = "https://api.stripe.test"


class InstantRetryHTTPXClient(TransportHTTPXClient):
    """For tests: retries run at once; the backoff the SDK asked for goes to `retry_delays`."""

    def __init__(self, client: httpx.AsyncClient, *, timeout: float = 80.0) -> None:
        super().__init__(client, timeout=timeout)
        self.retry_delays: list[float] = []

    def sleep_async(self, secs: float) -> Awaitable[None]:
        self.retry_delays.append(secs)
        return asyncio.sleep(0)


def make_stripe_client(
    double: StripeDouble,
    *,
    max_network_retries: int = 0,
    api_key: str = "sk_test_queue_double",
    stripe_version: str | None = None,
) -> stripe.StripeClient:
    """A real `stripe.StripeClient` whose requests reach `double`; retries do not sleep."""
    http_client = InstantRetryHTTPXClient(httpx.AsyncClient(transport=double.transport))
    return stripe.StripeClient(
        api_key,
        http_client=http_client,
        base_addresses={"api": STRIPE_DOUBLE_API_BASE},
        max_network_retries=max_network_retries,
        stripe_version=stripe_version,
    )
