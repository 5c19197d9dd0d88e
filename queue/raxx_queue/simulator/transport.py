"""The SDK's httpx client over a caller-provided `httpx.AsyncClient`, as production builds it.

`TransportHTTPXClient` is the production class (`raxx_queue.stripe_gateway`), re-exported so
the double and its tests wire the SDK exactly as the service does. `InstantRetryHTTPXClient`
adds what only tests want: the SDK's retry backoff runs at once and is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import httpx

from raxx_queue.stripe_gateway import TransportHTTPXClient

__all__ = ["InstantRetryHTTPXClient", "TransportHTTPXClient"]


class InstantRetryHTTPXClient(TransportHTTPXClient):
    """For tests: retries run at once; the backoff the SDK asked for goes to `retry_delays`."""

    def __init__(self, client: httpx.AsyncClient, *, timeout: float = 80.0) -> None:
        super().__init__(client, timeout=timeout)
        self.retry_delays: list[float] = []

    def sleep_async(self, secs: float) -> Awaitable[None]:
        self.retry_delays.append(secs)
        return asyncio.sleep(0)
