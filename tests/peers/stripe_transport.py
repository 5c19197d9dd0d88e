"""An `stripe.HTTPXClient` that sends through a caller-provided `httpx.AsyncClient`.

Two facts about the installed SDK (stripe 16.1) shape this class:

* `stripe.HTTPXClient(timeout=..., allow_sync_methods=False, **kwargs)` builds its own
  `httpx.AsyncClient` and takes no transport or client argument, so a test cannot hand it
  one. The subclass swaps the (still unused) client the parent built for the caller's.
* The parent sends form bodies as `data=<str>`, which httpx 0.28 deprecates with a
  `DeprecationWarning` on every POST. The SDK wraps any exception raised by httpx into
  `stripe.APIConnectionError`, so under `filterwarnings = error` every POST through the
  stock class fails as a "network error". The subclass passes `content=` instead.

Production (`raxx_queue/stripe_gateway.py`) should build its client the same way, with
`transport=None` there and the double's transport in tests::

    http = httpx.AsyncClient(transport=transport, timeout=httpx.Timeout(30.0))
    client = stripe.StripeClient(
        api_key,
        http_client=TransportHTTPXClient(http, timeout=30.0),
        base_addresses={"api": api_base} if api_base else None,
        max_network_retries=2,
    )
    ...  # on shutdown: await http.aclose()
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any

import httpx
import stripe


class TransportHTTPXClient(stripe.HTTPXClient):
    """The SDK's async httpx client, sending through `client` (and its transport)."""

    def __init__(self, client: httpx.AsyncClient, *, timeout: float = 80.0) -> None:
        super().__init__(timeout=timeout)
        # The parent offers no injection point; its own AsyncClient has opened nothing yet.
        self._client_async = client

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> list[Any]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        body = kwargs.pop("data")
        # httpx deprecates data=<str>; raw bodies go in content=.
        kwargs["content"] = body if isinstance(body, str | bytes) else None
        return [args, kwargs]


class InstantRetryHTTPXClient(TransportHTTPXClient):
    """For tests: retries run at once; the backoff the SDK asked for goes to `retry_delays`."""

    def __init__(self, client: httpx.AsyncClient, *, timeout: float = 80.0) -> None:
        super().__init__(client, timeout=timeout)
        self.retry_delays: list[float] = []

    def sleep_async(self, secs: float) -> Awaitable[None]:
        self.retry_delays.append(secs)
        return asyncio.sleep(0)
