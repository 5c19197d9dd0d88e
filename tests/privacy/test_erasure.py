"""Erasing one customer: nothing personal left in any table or log, the money kept."""

from __future__ import annotations

import json
import os
from typing import Any

import orjson
import pytest

from raxx_queue.simulator.events import build_event
from tests.conftest import AppClient
from tests.privacy import person
from tests.support import values
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.process import run_audit_verify, run_cli
from tests.support.webhooks import deliver, deliver_ok

ERASE = f"/api/internal/billing/customers/{person.QUEUE_ID}/erase"
MONEY = """
SELECT stripe_invoice_id, status, currency, amount_due, amount_paid, amount_remaining,
       paid_at, period_start, number
  FROM billing_invoice ORDER BY stripe_invoice_id
"""
STORED = "SELECT payload, payload_raw FROM processed_stripe_events WHERE event_id = $1"
SUBSCRIPTION = """
SELECT stripe_subscription_id, status, plan_tier, price_id, current_period_end,
       grace_until, payment_failure_count, last_payment_failed_at
  FROM billing_subscription
"""


async def seed(client: AppClient) -> None:
    for event in person.history():
        await deliver_ok(client, event)


async def money(db: Conn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    invoices = [dict(r) for r in await db.fetch(MONEY)]
    subscriptions = [dict(r) for r in await db.fetch(SUBSCRIPTION)]
    return invoices, subscriptions


async def test_erasure_leaves_nothing_personal_and_keeps_the_financial_record(
    client: AppClient, db: Conn, captured_logs: CapturedLogs, clean_db: str
) -> None:
    await seed(client)
    before = await money(db)
    mirror = await db.fetch("SELECT * FROM billing_subscription_mirror")
    assert set(await person.scan(db)) >= {"billing_customer", "processed_stripe_events"}

    response = await client.post(ERASE, headers=values.CONSOLE)

    assert response.status_code == 200, response.text
    report = response.json()
    print("erasure report:", report)
    assert report["already_erased"] is False
    assert report["erased"]["customer"] == {"emails": 1, "names": 1, "addresses": 1}
    assert report["erased"]["event_payloads"] == 7  # all but the subscription's event
    fields = report["erased"]["event_fields"]
    assert {"emails", "names", "phones", "addresses", "payment_methods", "free_text"} <= set(fields)
    assert report["erased"]["invoice_links"] == 2
    assert report["stripe"] == {
        "status": "not_requested",
        "stripe_customer_id": None,
        "error_code": None,
    }

    leaks = await person.scan(db)
    print("scan after erasure:", leaks or "nothing found")
    assert leaks == {}
    assert await money(db) == before
    # the mirror held nothing personal: unchanged, nothing pushed
    assert await db.fetch("SELECT * FROM billing_subscription_mirror") == mirror
    tombstone = await db.fetchrow(
        "SELECT queue_customer_id, stripe_customer_id, erased_at FROM billing_customer"
    )
    assert tombstone["stripe_customer_id"] == person.CUSTOMER
    assert tombstone["erased_at"] is not None
    erase_rows = await db.fetch(
        "SELECT actor, summary FROM billing_action_log WHERE action = 'customer.erase'"
    )
    assert [r["actor"] for r in erase_rows] == ["console"]
    assert json.loads(erase_rows[0]["summary"])["erased"] == report["erased"]

    sealer = client.services.workers.sealer
    assert sealer is not None
    await sealer.seal_now()
    verified = run_audit_verify(clean_db)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert '"ok": true' in verified.stdout
    captured_logs.assert_free_of(person.NEEDLES)


async def test_erasing_twice_is_a_no_op_and_unknown_is_404(client: AppClient, db: Conn) -> None:
    await seed(client)
    assert (await client.post(ERASE, headers=values.CONSOLE)).status_code == 200

    again = await client.post(ERASE, headers=values.CONSOLE, json={})

    assert again.status_code == 200, again.text
    assert again.json()["already_erased"] is True
    assert again.json()["erased"] == {
        "customer": {},
        "event_payloads": 0,
        "event_fields": {},
        "invoice_links": 0,
    }
    count = "SELECT count(*) FROM billing_action_log WHERE action = 'customer.erase'"
    assert await db.fetchval(count) == 1
    unknown = await client.post(
        "/api/internal/billing/customers/cust_nobody/erase", headers=values.CONSOLE
    )
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "CUSTOMER_NOT_FOUND"
    raptor = await client.post(ERASE, headers=values.RAPTOR)
    assert raptor.status_code == 403
    bad = await client.post(ERASE, headers=values.CONSOLE, json={"stripe": "keep"})
    assert bad.status_code == 422


async def test_a_customer_without_stripe_is_erased(client: AppClient, db: Conn) -> None:
    created = await client.post(
        "/api/v1/billing/customers",
        headers=values.CONSOLE,
        json={"queue_customer_id": "cust_local", "email": person.EMAIL, "name": person.NAME},
    )
    assert created.status_code in (200, 201), created.text
    await db.execute("UPDATE billing_customer SET stripe_customer_id = NULL")

    response = await client.post(
        "/api/internal/billing/customers/cust_local/erase", headers=values.CONSOLE
    )

    assert response.status_code == 200, response.text
    assert response.json()["erased"]["customer"] == {"emails": 1, "names": 1}
    assert await person.scan(db) == {}


async def test_cli_erases_as_the_console_does(client: AppClient, db: Conn, clean_db: str) -> None:
    await seed(client)
    env = {**os.environ, "DATABASE_URL": clean_db, "LOG_FORMAT": "json"}

    done = run_cli("customers", "erase", person.QUEUE_ID, env=env)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["erased"]["event_payloads"] == 7
    assert await person.scan(db) == {}
    for needle in person.NEEDLES:
        assert needle not in done.stdout + done.stderr
    unknown = run_cli("customers", "erase", "cust_nobody", env=env)
    assert unknown.returncode == 1
    assert "CUSTOMER_NOT_FOUND" in unknown.stderr


async def test_an_event_found_only_by_the_email_in_its_raw_copy_is_redacted(
    client: AppClient, db: Conn
) -> None:
    """A delivery names neither the customer nor its objects, only its e-mail address:
    the stored stub holds ids alone, the raw copy the address. The erasure finds the
    event by the raw copy and keeps no copy of it."""
    await seed(client)
    receipt = person.charge(created=person.T0 + 90)
    receipt.update(id="ch_guest1", customer=None, payment_intent=None, payment_method=None)
    event = build_event("charge.succeeded", receipt, created=person.T0 + 91)
    await deliver_ok(client, event)
    stored = await db.fetchrow(STORED, event["id"])
    assert person.EMAIL in stored["payload_raw"]
    assert person.EMAIL not in stored["payload"]

    response = await client.post(ERASE, headers=values.CONSOLE)

    assert response.status_code == 200, response.text
    assert response.json()["erased"]["event_payloads"] == 8  # the seven, and this one
    stored = await db.fetchrow(STORED, event["id"])
    assert stored["payload_raw"] is None
    assert person.EMAIL not in stored["payload"]
    assert json.loads(stored["payload"])["data"]["object"]["id"] == "ch_guest1"


@pytest.mark.parametrize(
    "written",
    [
        pytest.param(person.EMAIL.replace("@", "\\u0040"), id="escaped"),
        pytest.param(person.EMAIL.upper(), id="upper-case"),
    ],
)
async def test_an_email_written_otherwise_in_a_raw_copy_is_found(
    client: AppClient, db: Conn, written: str
) -> None:
    """The search reads a raw copy as it is only when it holds no JSON escape: an address
    written with one (`\\u0040` for the `@`) is found in the parsed event, and one in
    another case in the copy itself."""
    await seed(client)
    receipt = person.charge(created=person.T0 + 90)
    receipt.update(id="ch_guest2", customer=None, payment_intent=None, payment_method=None)
    event = build_event("charge.succeeded", receipt, created=person.T0 + 91)
    body = orjson.dumps(event).replace(person.EMAIL.encode(), written.encode())
    assert written.encode() in body
    assert person.EMAIL.encode() not in body
    response = await deliver(client, body)
    assert response.status_code == 200, response.text
    assert written in (await db.fetchrow(STORED, event["id"]))["payload_raw"]

    response = await client.post(ERASE, headers=values.CONSOLE)

    assert response.status_code == 200, response.text
    assert response.json()["erased"]["event_payloads"] == 8  # the seven, and this one
    stored = await db.fetchrow(STORED, event["id"])
    assert stored["payload_raw"] is None
    assert person.EMAIL not in stored["payload"].lower()
