"""The audit chain verifies after any number of erasures: no audit row ever held
personal data, so erasing rewrites none."""

from __future__ import annotations

from typing import Any

from tests.conftest import AppClient
from tests.privacy import person
from tests.support import values
from tests.support.database import Conn
from tests.support.process import run_audit_verify
from tests.support.webhooks import deliver_ok

PEOPLE = 5
PAYLOADS = "SELECT event_id, payload FROM processed_stripe_events WHERE event_id = ANY($1::text[])"


async def payloads(db: Conn, people: list[tuple[list[dict[str, Any]], Any]]) -> dict[str, str]:
    ids = [event["id"] for events, _ in people for event in events]
    return {r["event_id"]: r["payload"] for r in await db.fetch(PAYLOADS, ids)}


async def test_the_chain_verifies_after_erasures_and_no_audit_row_holds_personal_data(
    client: AppClient, db: Conn, clean_db: str
) -> None:
    people = [person.another(k, person.history()) for k in range(2, 2 + PEOPLE)]
    for events, _ in people:
        for event in events:
            await deliver_ok(client, event)
    sealer = client.services.workers.sealer
    assert sealer is not None
    await sealer.seal_now()  # most of the chain sealed before any erasure

    erased = people[:3]
    others_before = await payloads(db, people[3:])
    for events, _ in erased:
        queue_id = events[0]["data"]["object"]["metadata"]["queue_customer_id"]
        for _ in range(2):  # the second is a no-op
            response = await client.post(
                f"/api/internal/billing/customers/{queue_id}/erase", headers=values.CONSOLE
            )
            assert response.status_code == 200, response.text
    await sealer.seal_now()

    verified = run_audit_verify(clean_db)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert '"ok": true' in verified.stdout
    audit = await db.fetchval(
        "SELECT string_agg(to_jsonb(a)::text, E'\\n') FROM billing_action_log AS a"
    )
    rows = await db.fetchval("SELECT count(*) FROM billing_action_log")
    print(f"audit rows: {rows}, sealed and verified; erasures: {len(erased)}")
    everyone = [needle for _, needles in people for needle in needles]
    assert [needle for needle in everyone if needle in audit] == []
    # the erased are gone from every table; the others are still there
    leaks = await person.scan(db, tuple(n for _, needles in erased for n in needles))
    assert leaks == {}
    # nothing of the others was touched, though their charges point at the same card
    assert await payloads(db, people[3:]) == others_before
    for _, needles in people[3:]:
        assert "billing_customer" in await person.scan(db, needles)
