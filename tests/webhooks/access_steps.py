"""Steps of the access-policy tests: events that change access, and what a reader sees."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from raxx_queue.simulator.events import build_event
from raxx_queue.simulator.fixtures import fixture
from tests.support import values
from tests.support.database import Conn
from tests.support.webhooks import T0, deliver_ok, invoice_event, subscription_event


async def read(client: httpx.AsyncClient, queue_customer_id: str = "cust_1") -> dict[str, Any]:
    response = await client.get(
        f"/api/v1/billing/subscriptions/{queue_customer_id}", headers=values.RAPTOR
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def access(client: httpx.AsyncClient) -> tuple[str, str | None, str]:
    """(access, access_reason, rule) of the subscription read, checked against the mirror
    rule entitled = access in (active, trialing, grace)."""
    body = await read(client)
    assert body["entitled"] == (body["access"] in ("active", "trialing", "grace"))
    if not body["entitled"]:
        assert body["plan_tier"] == "free"
    return body["access"], body["access_reason"], body["access_rule"]


async def mirror(db: Conn, queue_customer_id: str = "cust_1") -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT access, access_reason, access_rule, entitled, plan_tier, version,"
        " access_due_at FROM billing_subscription_mirror WHERE queue_customer_id = $1",
        queue_customer_id,
    )
    assert row is not None
    return dict(row)


async def access_audit(db: Conn) -> list[dict[str, Any]]:
    """The changes of access the audit log names, in order: each in the row of what made it
    (an event, the expiry job) or in its own 'access.changed' row."""
    rows = await db.fetch(
        "SELECT actor, action, event_id, summary -> 'access' AS access FROM billing_action_log"
        " WHERE summary ? 'access' ORDER BY id"
    )
    summaries = [json.loads(r["access"]) for r in rows]
    return [
        {
            "actor": r["actor"],
            "action": r["action"],
            "event_id": r["event_id"],
            "rule": summary["rule"],
            "from": summary["before"]["access"],
            "to": summary["after"]["access"],
            "reason": summary["after"].get("access_reason"),
        }
        for r, summary in zip(rows, summaries, strict=True)
    ]


def dispute_event(
    event_type: str,
    *,
    status: str,
    created: int,
    dispute: str = "dp_1",
    charge: str = "ch_1",
) -> dict[str, Any]:
    obj = fixture("dispute")
    obj.update(id=dispute, charge=charge, status=status, created=T0)
    return build_event(event_type, obj, created=created)


def paid_with_charge(created: int, charge: str = "ch_1") -> dict[str, Any]:
    """invoice.paid naming its charge in the current shape (payments, 2025-03-31.basil+)."""
    event = invoice_event("invoice.paid", status="paid", created=created)
    event["data"]["object"]["payments"] = {
        "object": "list",
        "data": [{"object": "invoice_payment", "payment": {"type": "charge", "charge": charge}}],
    }
    return event


def with_pause(
    event: dict[str, Any], behavior: str | None, resumes_at: int | None = None
) -> dict[str, Any]:
    pause = {"behavior": behavior, "resumes_at": resumes_at} if behavior else None
    event["data"]["object"]["pause_collection"] = pause
    return event


async def subscribed(client: httpx.AsyncClient, created: int = T0, **kw: Any) -> None:
    await deliver_ok(
        client, subscription_event("customer.subscription.created", created=created, **kw)
    )


async def time_passes_to(db: Conn, column: str) -> None:
    """Time moves past a stored instant (no event will say so)."""
    past = datetime.now(UTC) - timedelta(seconds=1)
    await db.execute(f"UPDATE billing_subscription SET {column} = $1", past)  # noqa: S608
    await db.execute(
        "UPDATE billing_subscription_mirror SET access_due_at = $1 WHERE access_due_at IS NOT NULL",
        past,
    )
