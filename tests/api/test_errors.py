"""The error shape, request ids and the body limit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.support import values

ONE_MIB = 1024 * 1024


async def test_unknown_route_is_404_in_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/v1/nothing-here", headers=values.CONSOLE)
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "NOT_FOUND"
    assert body["request_id"] == response.headers["x-request-id"]


async def test_wrong_method_is_405_in_the_error_shape(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "req-abc.123"})
    assert response.headers["x-request-id"] == "req-abc.123"


@pytest.mark.parametrize("bad", ["a" * 200, "has space", "semi;colon", "<script>"])
async def test_malformed_request_id_is_replaced(client: httpx.AsyncClient, bad: str) -> None:
    response = await client.get("/health", headers={"X-Request-ID": bad})
    assert response.headers["x-request-id"] != bad
    assert len(response.headers["x-request-id"]) == 32


async def test_body_over_1_mib_is_413_by_content_length(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/billing/customers", content=b"x" * (ONE_MIB + 1), headers=values.CONSOLE
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"


async def test_streamed_body_over_1_mib_is_413(client: httpx.AsyncClient) -> None:
    """No Content-Length: the limit is enforced while the body streams in."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield b"{" * (64 * 1024)

    response = await client.post(
        "/api/v1/billing/webhook", content=chunks(), headers={"Stripe-Signature": "t=1,v1=00"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
