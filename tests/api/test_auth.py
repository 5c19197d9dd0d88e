"""The caller table of SPEC §3: each protected route with no, wrong, raptor and console tokens."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from raxx_queue.api.deps import (
    PERMISSIONS,
    PERSONAL_FIELDS,
    STRIPE_SIGNED_ROUTES,
    Allow,
    Caller,
    Permission,
)
from tests.conftest import AppClient
from tests.support import values
from tests.support.routes import api_routes, iter_route_objects

# A request for each protected route: method, path, body. Who may make it is not said
# here: the route's own dependency names its permission, and PERMISSIONS (api/deps.py)
# the callers of each; this table only gives something to send.
PROTECTED_ROUTES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/billing/customers", None),
    ("GET", "/api/v1/billing/customers/cust_1", None),
    ("GET", "/api/v1/billing/subscriptions/cust_1", None),
    ("GET", "/api/v1/billing/invoices/cust_1", None),
    ("GET", "/metrics", None),
    ("GET", "/api/internal/billing/audit/verify", None),
    ("POST", "/api/internal/billing/reconcile", None),
    # bodiless: allowed callers get 422, so nothing reaches Stripe
    ("POST", "/api/v1/billing/customers", None),
    ("POST", "/api/v1/billing/subscribe", None),
    ("POST", "/api/v1/billing/checkout", None),
    ("POST", "/api/v1/billing/portal", None),
    ("POST", "/api/internal/billing/mirror-sync", {"queue_customer_id": "cust_1"}),
    ("GET", "/api/internal/billing/mirror/digest", None),
    # an invalid body: allowed callers get 422, so nothing is erased
    ("POST", "/api/internal/billing/customers/cust_1/erase", {"stripe": "keep"}),
]

# SPEC §3's table, as the service declares it: each route's permission and its callers.
EXPECTED_PERMISSIONS = {
    "GET /api/v1/billing/customers": Permission.BILLING_READ,
    "GET /api/v1/billing/customers/{queue_customer_id}": Permission.BILLING_READ,
    "GET /api/v1/billing/subscriptions/{queue_customer_id}": Permission.BILLING_READ,
    "GET /api/v1/billing/invoices/{queue_customer_id}": Permission.BILLING_READ,
    "GET /metrics": Permission.METRICS,
    "GET /api/internal/billing/audit/verify": Permission.OPERATIONS,
    "POST /api/internal/billing/reconcile": Permission.OPERATIONS,
    "POST /api/v1/billing/customers": Permission.CUSTOMER_CREATE,
    "POST /api/v1/billing/subscribe": Permission.PAYMENT_PAGES,
    "POST /api/v1/billing/checkout": Permission.PAYMENT_PAGES,
    "POST /api/v1/billing/portal": Permission.PAYMENT_PAGES,
    "POST /api/internal/billing/mirror-sync": Permission.MIRROR_SYNC,
    "GET /api/internal/billing/mirror/digest": Permission.MIRROR_DIGEST,
    "POST /api/internal/billing/customers/{queue_customer_id}/erase": Permission.ERASURE,
}


def route_permissions(app: FastAPI) -> dict[str, Permission]:
    """'METHOD path' → the permission its Allow dependency checks, for every route."""
    found = {}
    for route in iter_route_objects(app.routes):
        if not isinstance(route, APIRoute):
            continue
        checks = [d.call for d in route.dependant.dependencies if isinstance(d.call, Allow)]
        checks += [
            sub.call
            for d in route.dependant.dependencies
            for sub in d.dependencies
            if isinstance(sub.call, Allow)
        ]
        for method in route.methods:
            if checks:
                found[f"{method} {route.path}"] = checks[0].permission
    return found


TOKENS = {"raptor": values.RAPTOR, "console": values.CONSOLE, "metrics": values.METRICS}


def _ids() -> list[str]:
    return [f"{method} {path}" for method, path, _ in PROTECTED_ROUTES]


def _template(method: str, path: str) -> str:
    return f"{method} {path.replace('cust_1', '{queue_customer_id}')}"


def test_the_declared_table_is_spec_s() -> None:
    """PERMISSIONS says what SPEC §3 says, per permission."""
    raptor, console, metrics = Caller.RAPTOR, Caller.CONSOLE, Caller.METRICS
    assert dict(PERMISSIONS) == {
        Permission.BILLING_READ: {raptor, console},
        Permission.CUSTOMER_CREATE: {raptor, console},
        Permission.PAYMENT_PAGES: {raptor},
        Permission.MIRROR_SYNC: {raptor, console},
        Permission.MIRROR_DIGEST: {raptor, console},
        Permission.OPERATIONS: {console},
        Permission.METRICS: {raptor, console, metrics},
        Permission.ERASURE: {console},
    }


def test_the_declared_personal_fields() -> None:
    """Per field, who sees it in a customer answer (tests/api/test_personal_fields.py
    sends each route to each caller)."""
    assert dict(PERSONAL_FIELDS) == {
        "billing_email": {Caller.CONSOLE},
        "billing_name": {Caller.CONSOLE},
    }


async def test_each_route_checks_its_permission(client: AppClient) -> None:
    assert route_permissions(client.app) == EXPECTED_PERMISSIONS


@pytest.mark.parametrize(("method", "path", "body"), PROTECTED_ROUTES, ids=_ids())
async def test_route_permissions(
    client: AppClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    allowed = {
        caller.value for caller in PERMISSIONS[EXPECTED_PERMISSIONS[_template(method, path)]]
    }
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


async def test_health_and_ready_need_no_token(client: AppClient) -> None:
    assert (await client.get("/health")).status_code == 200
    assert (await client.get("/ready")).status_code == 200


async def test_every_api_route_is_in_the_matrix(client: AppClient) -> None:
    """A new /api route must be added to PROTECTED_ROUTES (or be signed by Stripe)."""
    declared = {_template(m, p) for m, p, _ in PROTECTED_ROUTES}
    routes = [(m, p) for m, p in api_routes(client.app) if p not in STRIPE_SIGNED_ROUTES]
    assert len(routes) >= 4
    for method, path in routes:
        assert f"{method} {path}" in declared, f"{method} {path} missing from the auth matrix"


@pytest.mark.parametrize("path", sorted(STRIPE_SIGNED_ROUTES))
async def test_stripe_signed_routes_take_no_token_and_refuse_an_unsigned_body(
    client: AppClient, path: str
) -> None:
    """A service token opens no Stripe route: only the body's signature does."""
    assert ("POST", path) in api_routes(client.app)
    for headers in ({}, values.RAPTOR, values.CONSOLE):
        response = await client.post(path, content=b"{}", headers=headers)
        assert response.status_code == 400, (path, headers)
        assert response.json()["error"]["code"] == "INVALID_SIGNATURE"


NEW_RAPTOR_TOKEN = "raptor-test-token-next-4b6d8f0a2c"


async def test_a_caller_may_hold_several_tokens_while_rotating(app_factory: Any) -> None:
    """Finding 7: the new token is added beside the old, callers move over, the old goes."""
    both = f"{NEW_RAPTOR_TOKEN}, {values.RAPTOR_TOKEN}"
    async with app_factory(queue_service_token_raptor=both) as client:
        for token in (values.RAPTOR_TOKEN, NEW_RAPTOR_TOKEN):
            response = await client.get(
                "/api/v1/billing/customers/cust_1", headers=values.bearer(token)
            )
            assert response.status_code == 404, response.text  # known caller, no such customer
            forbidden = await client.get(
                "/api/internal/billing/audit/verify", headers=values.bearer(token)
            )
            assert forbidden.status_code == 403  # still Raptor, whichever token
    async with app_factory(queue_service_token_raptor=NEW_RAPTOR_TOKEN) as client:
        retired = await client.get("/api/v1/billing/customers/cust_1", headers=values.RAPTOR)
        assert retired.status_code == 401
        current = await client.get(
            "/api/v1/billing/customers/cust_1", headers=values.bearer(NEW_RAPTOR_TOKEN)
        )
        assert current.status_code == 404


async def test_the_metrics_token_reads_metrics_and_nothing_else(client: AppClient) -> None:
    """Finding 7: operators scrape with METRICS_TOKEN, not a copy of Console's."""
    response = await client.get("/metrics", headers=values.METRICS)
    assert response.status_code == 200
    assert "queue_http_requests_total" in response.text
    for method, path, body in PROTECTED_ROUTES:
        if path == "/metrics":
            continue
        refused = await client.request(method, path, json=body, headers=values.METRICS)
        assert refused.status_code == 403, (method, path)
