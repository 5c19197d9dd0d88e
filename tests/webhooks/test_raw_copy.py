"""A delivery's payload is stored as the text Stripe sent, beside a stub of its ids
(migrations: billing_event_raw_copy): the copy is the body byte for byte, the stored
event reads back whole, and the stub keeps everything the erasure check on insert and
retention read of it."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest

from raxx_queue.simulator.events import build_event, signed
from raxx_queue.simulator.fixtures import fixtures_path
from raxx_queue.webhooks.pipeline import EventContext, apply_params, stored_payload
from tests.conftest import AppClient
from tests.support import values
from tests.support.database import Conn
from tests.support.webhooks import WEBHOOK, subscription_event

STORED = """
SELECT payload, payload_raw, billing_event_payload(payload, payload_raw) AS whole
  FROM processed_stripe_events WHERE event_id = $1
"""
# what the erasure check on insert and retention read of a stored payload
READ_OF = """
SELECT billing_event_customer(p) AS customer,
       billing_event_refs(p) AS refs,
       p #>> '{data,object,metadata,queue_customer_id}' AS queue_customer_id,
       p #>> '{data,object,client_reference_id}' AS client_reference_id,
       billing_strip_payload(p) AS stripped
  FROM (SELECT $1::jsonb AS p) AS event
"""


async def test_a_delivery_is_stored_as_sent_beside_a_stub(client: AppClient, db: Conn) -> None:
    event = subscription_event("customer.subscription.updated", status="active")
    body, header = signed(event, values.WEBHOOK_SECRET)
    response = await client.post(WEBHOOK, content=body, headers={"Stripe-Signature": header})
    assert response.status_code == 200, response.text

    stored = await db.fetchrow(STORED, event["id"])
    assert stored["payload_raw"] == body.decode()
    assert json.loads(stored["whole"]) == json.loads(body)
    stub = json.loads(stored["payload"])
    assert stub["id"] == event["id"]
    assert stub["type"] == event["type"]
    assert set(stub["data"]["object"]) <= {"id", "object", "customer", "metadata"}
    assert "items" in json.loads(body)["data"]["object"]  # what the stub leaves to the copy


def _objects() -> list[tuple[str, dict[str, Any]]]:
    """Every object of Stripe's fixtures."""
    resources = json.loads(fixtures_path().read_text())["resources"]
    found = []
    for name, obj in sorted(resources.items()):
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            found.append((name, obj))
    return found


OBJECTS = _objects()


@pytest.mark.parametrize(("name", "obj"), OBJECTS, ids=[name for name, _ in OBJECTS])
async def test_the_stub_keeps_what_the_erasure_check_and_retention_read(
    db: Conn, name: str, obj: dict[str, Any]
) -> None:
    obj = {**obj, "metadata": {"queue_customer_id": "cust_1", "note": "a note"}}
    if name == "checkout.session":
        obj["client_reference_id"] = "cust_2"
    event = build_event(f"{name}.updated", obj)
    stub = stored_payload(event, event["data"]["object"], "the raw copy")

    whole = await db.fetchrow(READ_OF, json.dumps(event))
    kept = await db.fetchrow(READ_OF, json.dumps(stub))

    assert dict(kept) == dict(whole)
    assert len(json.dumps(stub)) < len(json.dumps(event))


async def test_a_batch_takes_one_raw_copy_per_event(db: Conn) -> None:
    """A stub payload stored without its copy would lose the event's body: a batch whose
    raw copies do not match its events one for one is refused whole."""
    event = subscription_event("customer.subscription.updated", status="active")
    body = json.dumps(event)
    param = apply_params(event, EventContext(price_tiers={}, grace_days=7, raw=body))
    for raws in ([], [body, body]):
        with pytest.raises(asyncpg.InvalidParameterValueError, match="one raw copy per event"):
            await db.fetch(
                "SELECT * FROM billing_apply_stripe_events($1::jsonb, '250ms', $2::text[])",
                json.dumps([param]),
                raws,
            )
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == 0
