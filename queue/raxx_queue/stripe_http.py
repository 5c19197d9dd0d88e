"""The stripe SDK's async HTTP client over an `httpx.AsyncClient` the caller provides."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
import stripe


class TransportHTTPXClient(stripe.HTTPXClient):
    """The SDK's async httpx client, sending through a caller-provided `httpx.AsyncClient`.

    `stripe.HTTPXClient` builds its own `httpx.AsyncClient` and takes no transport, so the
    client is swapped after construction. The parent sends form bodies as `data=<str>`, which
    httpx 0.28 deprecates with a warning on every POST; bodies go in `content=` instead.
    """

    def __init__(self, client: httpx.AsyncClient, *, timeout: float | httpx.Timeout = 80.0):
        super().__init__(timeout=timeout)
        self._unused_client: httpx.AsyncClient = self._client_async
        self._client_async = client

    def _get_request_args_kwargs(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any
    ) -> list[Any]:
        args, kwargs = super()._get_request_args_kwargs(method, url, headers, post_data)
        body = kwargs.pop("data")
        kwargs["content"] = body if isinstance(body, str | bytes) else None
        return [args, kwargs]

    async def close_async(self) -> None:
        await self._client_async.aclose()
        await self._unused_client.aclose()
