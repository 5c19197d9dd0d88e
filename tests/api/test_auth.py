"""The caller table of SPEC §3: each protected route with no, wrong, raptor and console tokens."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import values
from tests.support.routes import api_routes

# method, path, body, callers allowed. Grows with every protected route.
PROTECTED_ROUTES: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("GET", "/api/v1/billing/customers", None, {"raptor", "console"}),
    ("GET", "/api/v1/billing/customers/cust_1", None, {"raptor", "console"}),
    ("GET", "/api/v1/billing/subscriptions/cust_1", None, {"raptor", "console"}),
    ("GET", "/api/v1/billing/invoices/cust_1", None, {"raptor", "console"}),
    ("GET", "/metrics", None, {"raptor", "console"}),
    ("GET", "/api/internal/billing/audit/verify", None, {"console"}),
    ("POST", "/api/internal/billing/reconcile", None, {"console"}),
    # bodiless: allowed callers get 422, so nothing reaches Stripe
    ("POST", "/api/v1/billing/customers", None, {"raptor", "console"}),
    ("POST", "/api/v1/billing/subscribe", None, {"raptor"}),
    ("POST", "/api/v1/billing/checkout", None, {"raptor"}),
    ("POST", "/api/v1/billing/portal", None, {"raptor"}),
    (
        "POST",
        "/api/internal/billing/mirror-sync",
        {"queue_customer_id": "cust_1"},
        {"raptor", "console"},
    ),
]

TOKENS = {"raptor": values.RAPTOR, "console": values.CONSOLE}


def _ids() -> list[str]:
    return [f"{method} {path}" for method, path, _, _ in PROTECTED_ROUTES]


@pytest.mark.parametrize(("method", "path", "body", "allowed"), PROTECTED_ROUTES, ids=_ids())
async def test_route_permissions(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    allowed: set[str],
) -> None:
    missing = await client.request(method, path, json=body)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "UNAUTHENTICATED"

    for header in (
        {"Authorization": f"Bearer {values.RAPTOR_TOKEN[:-1]}x"},  # differs in the last character
        {"Authorization": "Bearer "},
        {"Authorization": values.RAPTOR_TOKEN},  # no scheme
        {"Authorization": f"Basic {values.CONSOLE_TOKEN}"},
    ):
        wrong = await client.request(method, path, json=body, headers=header)
        assert wrong.status_code == 401, header

    for caller, headers in TOKENS.items():
        response = await client.request(method, path, json=body, headers=headers)
        if caller in allowed:
            assert response.status_code not in (401, 403), (caller, response.text)
        else:
            assert response.status_code == 403, caller
            assert response.json()["error"]["code"] == "FORBIDDEN"


async def test_health_and_ready_need_no_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/ready")).status_code == 200


async def test_every_api_route_is_in_the_matrix(client: httpx.AsyncClient) -> None:
    """A new /api route must be added to PROTECTED_ROUTES (or be the webhook)."""
    app = client.app  # type: ignore[attr-defined]
    declared = {(m, p.replace("cust_1", "{queue_customer_id}")) for m, p, _, _ in PROTECTED_ROUTES}
    routes = [(m, p) for m, p in api_routes(app) if p != "/api/v1/billing/webhook"]
    assert len(routes) >= 4
    for method, path in routes:
        assert (method, path) in declared, f"{method} {path} missing from the auth matrix"
