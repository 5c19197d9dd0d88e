"""One push to Raptor over HTTP: the request (bearer token, Standard Webhooks headers)
and what its answer means for the row and for the destination."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from raxx_queue import __version__
from raxx_queue.jsonio import dumps
from raxx_queue.mirror.signing import MirrorSigner, message_id
from raxx_queue.settings import Settings

# Statuses that say "Raptor is not taking pushes" rather than "this row is refused".
UNAVAILABLE_STATUSES = frozenset({401, 403, 408, 429})
# Statuses whose Retry-After is honoured (Standard Webhooks' advice).
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})
# 410 Gone: the endpoint asks not to be sent anything more until it is re-enabled.
GONE = 410


@dataclass(frozen=True)
class Answer:
    """What one request came to: `outcome` is the metric label, `error` what is stored."""

    outcome: str  # ok, rejected, failed, gone, timeout, unreachable
    error: str | None = None
    retry_after: float | None = None  # seconds Raptor asked to wait, capped


class MirrorEndpoint:
    """Raptor's mirror URL, reached through the shared client, pushes signed when set."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        *,
        timeout: float,
        signer: MirrorSigner | None = None,
        retry_after_cap: float = 600.0,
    ) -> None:
        self.client = client
        self._url = url
        self._timeout = timeout
        self._signer = signer
        self._retry_after_cap = retry_after_cap

    async def push(self, row: dict[str, Any]) -> Answer:
        """POST one row; errors name a status or exception type only."""
        body = dumps(row)
        headers = None
        if self._signer is not None:
            msg_id = message_id(str(row["queue_customer_id"]), int(row["version"]))
            headers = self._signer.headers(msg_id, body)
        try:
            async with asyncio.timeout(self._timeout):
                response = await self.client.post(self._url, content=body, headers=headers)
        except (TimeoutError, httpx.TimeoutException):
            return Answer("timeout", "timeout")
        except httpx.HTTPError as error:
            return Answer("unreachable", type(error).__name__)
        return self._classify(response)

    def _classify(self, response: httpx.Response) -> Answer:
        status = response.status_code
        if 200 <= status < 300:
            return Answer("ok")
        error = f"HTTP {status}"
        if status == GONE:
            return Answer("gone", error)
        retry_after = None
        if status in RETRY_AFTER_STATUSES:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is not None:
                retry_after = min(retry_after, self._retry_after_cap)
        if 400 <= status < 500 and status not in UNAVAILABLE_STATUSES:
            return Answer("rejected", error)
        return Answer("failed", error, retry_after)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (delay-seconds or an HTTP date); None if absent
    or unreadable."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def mirror_client(settings: Settings, connections: int, timeout: float) -> httpx.AsyncClient:
    """The shared HTTP client for pushes: bearer token, JSON, bounded pool and timeouts."""
    headers = {"Content-Type": "application/json", "User-Agent": f"raxx-queue/{__version__}"}
    if settings.raptor_mirror_token is not None:
        headers["Authorization"] = f"Bearer {settings.raptor_mirror_token.get_secret_value()}"
    return httpx.AsyncClient(
        headers=headers,
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
        follow_redirects=False,
    )
