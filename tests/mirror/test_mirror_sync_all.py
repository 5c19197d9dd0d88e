"""mirror-sync `{"all": true}`, one run at a time and in short batches (finding 6)."""

from __future__ import annotations

import asyncio

from raxx_queue.mirror.requeue import JOB, requeue_every_mirror
from tests.conftest import AppClient, AppFactory
from tests.mirror.steps import add_customer
from tests.support import values
from tests.support.database import Conn

SYNC = "/api/internal/billing/mirror-sync"
CUSTOMERS = [f"cust_{k}" for k in range(5)]


async def _pushed(db: Conn) -> None:
    """Every row as if Raptor had accepted it, its backoff cleared."""
    await db.execute(
        "UPDATE billing_subscription_mirror"
        " SET pushed_version = version, push_attempts = 0, next_push_at = now() + interval '1 day'"
    )


async def test_every_row_is_requeued_batch_by_batch(client: AppClient, db: Conn) -> None:
    for customer in CUSTOMERS:
        await add_customer(db, customer)
    await _pushed(db)
    assert await requeue_every_mirror(client.services.db, batch=2) == 5
    rows = await db.fetch(
        "SELECT queue_customer_id, version > pushed_version AS pending, push_attempts,"
        " next_push_at <= now() AS due FROM billing_subscription_mirror ORDER BY 1"
    )
    assert [r["pending"] for r in rows] == [True] * 5
    assert [(r["push_attempts"], r["due"]) for r in rows] == [(0, True)] * 5
    runs = await db.fetch("SELECT outcome, report FROM billing_job_run WHERE job = $1", JOB)
    assert [r["outcome"] for r in runs] == ["ok"]


async def test_a_second_sync_all_while_one_runs_is_409(app_factory: AppFactory, db: Conn) -> None:
    for customer in CUSTOMERS:
        await add_customer(db, customer)
    await _pushed(db)
    await db.execute(
        "INSERT INTO billing_job_lease (job, holder, lease_until)"
        " VALUES ($1, 'mirror-sync:other', now() + interval '1 minute')",
        JOB,
    )
    async with app_factory() as client:
        busy = await client.post(SYNC, json={"all": True}, headers=values.CONSOLE)
        assert busy.status_code == 409
        assert busy.json()["error"]["code"] == "MIRROR_SYNC_RUNNING"
        assert (
            await db.fetchval(
                "SELECT count(*) FROM billing_subscription_mirror WHERE version > pushed_version"
            )
            == 0
        )
        await db.execute("UPDATE billing_job_lease SET lease_until = now() WHERE job = $1", JOB)
        answers = await asyncio.gather(
            *(client.post(SYNC, json={"all": True}, headers=values.CONSOLE) for _ in range(3))
        )
    codes = sorted(a.status_code for a in answers)
    assert codes[0] == 200
    assert set(codes[1:]) <= {200, 409}  # one at a time: a later call may find it ended
    assert next(a.json() for a in answers if a.status_code == 200) == {"queued": 5}
