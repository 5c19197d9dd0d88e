"""The drift check: Raptor compares digests of buckets with its copy and re-syncs only the
buckets that differ."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from raxx_queue.mirror.digest import bucket_of
from tests.conftest import AppClient
from tests.mirror.conftest import MirrorApp
from tests.mirror.steps import add_customer, change, holds_versions, nudge, versions
from tests.peers import raptor_digest
from tests.peers.raptor_receiver import RaptorReceiver
from tests.support import values
from tests.support.database import Conn

DIGEST = "/api/internal/billing/mirror/digest"
SYNC = "/api/internal/billing/mirror-sync"
CUSTOMERS = [f"cust_drift_{n:02d}" for n in range(40)]
BUCKETS = 16
EMPTY = hashlib.sha256(b"").hexdigest()


async def queue_digests(client: AppClient, buckets: int) -> list[dict[str, Any]]:
    response = await client.get(DIGEST, params={"buckets": buckets}, headers=values.RAPTOR)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["buckets"] == buckets
    assert len(body["digests"]) == buckets
    return list(body["digests"])


async def test_lost_and_corrupted_rows_are_found_by_bucket_and_repaired(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    for customer in CUSTOMERS:
        await add_customer(db, customer)
    async with mirror_app() as client:
        for customer in CUSTOMERS:
            await change(db, customer)
            await change(db, customer)
        nudge(client)
        await receiver.await_for(holds_versions(await versions(db)), timeout=10)
        in_sync = await queue_digests(client, BUCKETS)
        assert raptor_digest.differing(in_sync, raptor_digest.digests(receiver.rows, BUCKETS)) == []

        # Raptor's copy drifts: rows lost (a restore), rows stale or edited by hand
        lost, corrupted = CUSTOMERS[3:6], CUSTOMERS[20:22]
        for customer in lost:
            receiver.forget(customer)
        receiver.overwrite(corrupted[0], version=2, plan_tier="free", entitled=False)
        receiver.overwrite(corrupted[1], version=1)
        queue = await queue_digests(client, BUCKETS)
        differ = raptor_digest.differing(queue, raptor_digest.digests(receiver.rows, BUCKETS))
        damaged = {raptor_digest.bucket(c, BUCKETS) for c in (*lost, *corrupted)}
        assert set(differ) == damaged

        before = len(receiver.pushes)
        queued = 0
        for bucket in differ:
            answer = await client.post(
                SYNC, json={"bucket": bucket, "buckets": BUCKETS}, headers=values.RAPTOR
            )
            assert answer.status_code == 200, answer.text
            queued += answer.json()["queued"]
        in_differing = sum(entry["rows"] for entry in queue if entry["bucket"] in differ)
        assert queued == in_differing
        await receiver.await_for(
            lambda pushes: sum(p.accepted for p in pushes[before:]) >= queued, timeout=10
        )
        repushed = [row["queue_customer_id"] for p in receiver.pushes[before:] for row in p.rows]
        assert len(repushed) == queued <= in_differing
        assert {raptor_digest.bucket(c, BUCKETS) for c in repushed} == damaged

        after = await queue_digests(client, BUCKETS)
    assert raptor_digest.differing(after, raptor_digest.digests(receiver.rows, BUCKETS)) == []
    assert {key: row["version"] for key, row in receiver.rows.items()} == await versions(db)
    assert receiver.rows[corrupted[0]]["plan_tier"] == "pro"
    print(
        f"\ndrift repair: {len(CUSTOMERS)} rows, {len(lost)} lost + {len(corrupted)} corrupted"
        f" -> {len(differ)} of {BUCKETS} buckets differ -> {queued} rows re-pushed"
        f" (of {len(CUSTOMERS)})"
    )


async def test_the_documented_worked_example(db: Conn, mirror_app: MirrorApp) -> None:
    """docs/mirror.md's example, computed by the route."""
    for customer in ("cust_123", "cust_456", "cust_789"):
        await add_customer(db, customer)
    await db.execute(
        "UPDATE billing_subscription_mirror SET version = CASE queue_customer_id"
        " WHEN 'cust_123' THEN 7 WHEN 'cust_456' THEN 2 ELSE 12 END"
    )
    async with mirror_app() as client:
        digests = await queue_digests(client, 4)
    assert [bucket_of(c, 4) for c in ("cust_123", "cust_456", "cust_789")] == [1, 1, 2]
    assert digests == [
        {"bucket": 0, "rows": 0, "digest": EMPTY},
        {"bucket": 1, "rows": 2, "digest": hashlib.sha256(b"cust_123:7\ncust_456:2\n").hexdigest()},
        {"bucket": 2, "rows": 1, "digest": hashlib.sha256(b"cust_789:12\n").hexdigest()},
        {"bucket": 3, "rows": 0, "digest": EMPTY},
    ]
    # the values docs/mirror.md prints
    assert [d["digest"][:16] for d in digests] == [
        "e3b0c44298fc1c14",
        "de60624e23eac720",
        "7cb7707f5a91fb59",
        "e3b0c44298fc1c14",
    ]


@pytest.mark.parametrize("query", ["buckets=3", "buckets=0", "buckets=8192", "buckets=x"])
async def test_a_bucket_count_that_is_not_a_power_of_two_up_to_4096_is_422(
    client: AppClient, query: str
) -> None:
    response = await client.get(f"{DIGEST}?{query}", headers=values.CONSOLE)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"


@pytest.mark.parametrize(
    "body",
    [
        {"bucket": 1},
        {"buckets": 4},
        {"bucket": 4, "buckets": 4},
        {"bucket": -1, "buckets": 4},
        {"bucket": 0, "buckets": 6},
        {"bucket": "1", "buckets": 4},
        {"bucket": 0, "buckets": 4, "all": True},
        {"bucket": 0, "buckets": 4, "queue_customer_id": "cust_1"},
    ],
)
async def test_a_bucket_sync_needs_a_bucket_below_a_valid_count(
    client: AppClient, body: dict[str, Any]
) -> None:
    response = await client.post(SYNC, json=body, headers=values.RAPTOR)
    assert response.status_code == 422, body
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
