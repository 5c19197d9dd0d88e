"""FLAG_QUEUE_BILLING=false: every /api route answers 503 with Retry-After; health stays up."""

from __future__ import annotations

import httpx

from tests.conftest import AppFactory
from tests.support import values
from tests.support.routes import api_routes


def concrete_api_routes(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    app = client.app  # type: ignore[attr-defined]
    return [(m, p.replace("{queue_customer_id}", "cust_1")) for m, p in api_routes(app)]


async def test_every_billing_route_answers_503(app_factory: AppFactory) -> None:
    async with app_factory(flag_queue_billing=False) as client:
        routes = concrete_api_routes(client)
        assert len(routes) >= 4
        for method, path in routes:
            for headers in (values.RAPTOR, values.CONSOLE, {}):
                response = await client.request(method, path, headers=headers, json={})
                assert response.status_code == 503, (method, path)
                assert response.headers["retry-after"].isdigit()
                body = response.json()
                assert body["error"]["code"] == "BILLING_DISABLED"
                assert body["request_id"] == response.headers["x-request-id"]

        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["billing_enabled"] is False
        assert (await client.get("/ready")).status_code == 200
        assert (await client.get("/metrics", headers=values.CONSOLE)).status_code == 200


async def test_billing_routes_work_when_enabled(app_factory: AppFactory) -> None:
    async with app_factory(flag_queue_billing=True) as client:
        response = await client.get("/api/v1/billing/customers", headers=values.CONSOLE)
        assert response.status_code == 200
        assert (await client.get("/health")).json()["billing_enabled"] is True
