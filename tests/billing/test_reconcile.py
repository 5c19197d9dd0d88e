"""Reconcile: drift planted in Queue's rows is found, repaired, audited and reported once."""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import pytest

from raxx_queue.billing.reconcile import reconcile_context
from raxx_queue.billing.reconcile_run import reconcile_all
from raxx_queue.plans import price_tiers
from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.events import build_event, customer_obj, invoice_obj, subscription_obj
from raxx_queue.simulator.server import StripeServer
from tests.conftest import AppClient
from tests.support import values
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.process import run_cli, service_env
from tests.support.webhooks import PERIOD_END, T0, deliver_ok

RECONCILE = "/api/internal/billing/reconcile"
EMAIL = "ada@example.com"


async def _customer_in_sync(
    client: httpx.AsyncClient, double: StripeDouble, k: int = 1
) -> dict[str, Any]:
    """A customer whose Stripe objects and Queue rows agree."""
    objects = {
        "customer": customer_obj(f"cus_{k}", EMAIL, "Ada L", f"cust_{k}", created=T0),
        "subscription": subscription_obj(
            f"sub_{k}",
            f"cus_{k}",
            "active",
            values.PRICE_PRO,
            PERIOD_END,
            metadata={"queue_customer_id": f"cust_{k}"},
            created=T0,
        ),
        "invoice": invoice_obj(
            f"in_{k}", f"cus_{k}", f"sub_{k}", "paid", created=T0, price_id=values.PRICE_PRO
        ),
    }
    double.put_customer(objects["customer"])
    double.put_subscription(objects["subscription"])
    double.put_invoice(objects["invoice"])
    await deliver_ok(client, build_event("customer.created", objects["customer"], created=T0))
    await deliver_ok(
        client, build_event("customer.subscription.created", objects["subscription"], created=T0)
    )
    await deliver_ok(client, build_event("invoice.paid", objects["invoice"], created=T0))
    return objects


async def _reconcile(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(RECONCILE, json=body, headers=values.CONSOLE)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


async def test_in_sync_customer_has_no_drift(
    client: httpx.AsyncClient, db: Conn, stripe_double: StripeDouble
) -> None:
    await _customer_in_sync(client, stripe_double)
    audit_rows = await db.fetchval("SELECT count(*) FROM billing_action_log")
    assert await _reconcile(client, {"queue_customer_id": "cust_1"}) == {
        "checked": 1,
        "drifted": 0,
        "changes": [],
    }
    assert await db.fetchval("SELECT count(*) FROM billing_action_log") == audit_rows


async def test_planted_drift_is_repaired_audited_and_reported_once(
    client: httpx.AsyncClient,
    db: Conn,
    stripe_double: StripeDouble,
    captured_logs: CapturedLogs,
) -> None:
    await _customer_in_sync(client, stripe_double)
    await db.execute("UPDATE billing_subscription SET status = 'canceled', plan_tier = 'free'")
    await db.execute("UPDATE billing_invoice SET status = 'open', amount_paid = 0")
    await db.execute("UPDATE billing_customer SET billing_email = 'stale@example.com'")
    await db.execute("UPDATE billing_subscription_mirror SET entitled = false, plan_tier = 'free'")

    report = await _reconcile(client, {"queue_customer_id": "cust_1"})
    assert report["checked"] == 1
    assert report["drifted"] == 1
    by_object = {change["object"]: change for change in report["changes"]}
    assert by_object["subscription"]["fields"]["status"] == {
        "queue": "canceled",
        "stripe": "active",
    }
    assert by_object["subscription"]["fields"]["plan_tier"] == {"queue": "free", "stripe": "pro"}
    assert by_object["invoice"]["fields"]["status"] == {"queue": "open", "stripe": "paid"}
    assert by_object["customer"]["fields"] == {"email": {"changed": True}}
    assert EMAIL not in json.dumps(report)

    sub = await db.fetchrow("SELECT status, plan_tier FROM billing_subscription")
    assert dict(sub) == {"status": "active", "plan_tier": "pro"}
    assert await db.fetchval("SELECT status FROM billing_invoice") == "paid"
    assert await db.fetchval("SELECT billing_email FROM billing_customer") == EMAIL
    mirror = await db.fetchrow("SELECT entitled, plan_tier FROM billing_subscription_mirror")
    assert dict(mirror) == {"entitled": True, "plan_tier": "pro"}
    actors = await db.fetch(
        "SELECT DISTINCT actor, action FROM billing_action_log WHERE actor = 'reconcile'"
    )
    assert [dict(r) for r in actors] == [{"actor": "reconcile", "action": "reconcile.repair"}]
    repairs = await db.fetchval("SELECT count(*) FROM billing_action_log WHERE actor = 'reconcile'")
    assert repairs == 3

    again = await _reconcile(client, {"queue_customer_id": "cust_1"})
    assert again == {"checked": 1, "drifted": 0, "changes": []}
    assert (
        await db.fetchval("SELECT count(*) FROM billing_action_log WHERE actor = 'reconcile'")
        == repairs
    )
    captured_logs.assert_free_of([*values.SECRETS, EMAIL])


async def test_reconcile_all_resumes_from_its_checkpoint(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    for k in (1, 2, 3):
        await _customer_in_sync(client, stripe_double, k)
    await db.execute("UPDATE billing_subscription SET status = 'unpaid'")
    first_id = await db.fetchval("SELECT min(id) FROM billing_customer")
    await db.execute(
        "INSERT INTO billing_job_checkpoint (job, position) VALUES ('reconcile-all', $1)",
        str(first_id),
    )
    services = client.services
    context = reconcile_context(price_tiers(services.settings), 7)
    progress: list[tuple[int, int]] = []
    report = await reconcile_all(
        services.db, services.stripe, context, on_progress=lambda d, t: progress.append((d, t))
    )
    assert report.checked == 2
    assert report.drifted == 2
    assert progress == [(1, 2), (2, 2)]
    statuses = await db.fetch(
        "SELECT stripe_subscription_id, status FROM billing_subscription ORDER BY 1"
    )
    assert [tuple(r) for r in statuses] == [
        ("sub_1", "unpaid"),
        ("sub_2", "active"),
        ("sub_3", "active"),
    ]
    assert await db.fetchval("SELECT count(*) FROM billing_job_checkpoint") == 0


async def test_reconcile_route_validation_and_permissions(
    client: httpx.AsyncClient, db: Conn
) -> None:
    forbidden = await client.post(RECONCILE, json={"all": True}, headers=values.RAPTOR)
    assert forbidden.status_code == 403
    for body in (
        {},
        {"all": True, "queue_customer_id": "c"},
        {"all": False},
        {"queue_customer_id": "bad id"},
        {"queue_customer_id": "c", "extra": 1},
    ):
        response = await client.post(RECONCILE, json=body, headers=values.CONSOLE)
        assert response.status_code == 422, body
    missing = await client.post(
        RECONCILE, json={"queue_customer_id": "nobody"}, headers=values.CONSOLE
    )
    assert missing.status_code == 404


@pytest.mark.slow
async def test_cli_reconcile_all_with_progress(
    client: httpx.AsyncClient, db: Conn, stripe_double: StripeDouble, clean_db: str
) -> None:
    await _customer_in_sync(client, stripe_double)
    await db.execute("UPDATE billing_subscription SET cancel_at_period_end = true")
    with StripeServer(stripe_double) as server:
        env = {
            **service_env(clean_db, 8000),
            "STRIPE_API_BASE": server.url,
            "STRIPE_RESTRICTED_KEY": values.STRIPE_KEY,
            "COLUMNS": "100",
        }
        result = run_cli("reconcile", "--all", env={**os.environ, **env})
    assert result.returncode == 0, result.stderr
    assert "reconcile" in result.stdout
    report = json.loads(result.stdout[result.stdout.index("{") :])
    assert report["checked"] == 1
    assert report["drifted"] == 1
    assert await db.fetchval("SELECT cancel_at_period_end FROM billing_subscription") is False
