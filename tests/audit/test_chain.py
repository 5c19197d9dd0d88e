"""The audit chain: sealing, tamper detection, concurrent writers, the circuit breaker."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys

from raxx_queue.audit.chain import ONE_SEALER, seal_pending, verify_chain
from raxx_queue.audit.log import append_action
from raxx_queue.db.pool import Database
from tests.conftest import AppClient, AppFactory
from tests.support import values
from tests.support.database import Conn
from tests.support.process import run_audit_verify
from tests.support.webhooks import T0, deliver_ok, invoice_event, subscription_event

KEY = values.AUDIT_KEY.encode()
UNGUARDED = "ALTER TABLE billing_action_log DISABLE TRIGGER billing_action_log_append_only"


async def _history(client: AppClient, n: int = 5) -> None:
    for i in range(n):
        await deliver_ok(
            client,
            subscription_event(
                "customer.subscription.updated",
                status="active" if i % 2 else "past_due",
                created=T0 + i,
            ),
        )


async def _seal(client: AppClient) -> int:
    sealer = client.services.workers.sealer
    assert sealer is not None
    return await sealer.seal_now()


async def _verify(client: AppClient) -> dict[str, object]:
    response = await client.get("/api/internal/billing/audit/verify", headers=values.CONSOLE)
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


async def test_sealed_chain_verifies(client: AppClient, db: Conn) -> None:
    await _history(client)
    await _seal(client)
    assert await _verify(client) == {"ok": True, "rows": 5, "first_bad_id": None, "unsealed": 0}
    rows = await db.fetch("SELECT id, prev_hash, row_hash FROM billing_action_log ORDER BY id")
    assert rows[0]["prev_hash"] == "0" * 64
    for before, after in itertools.pairwise(rows):
        assert after["prev_hash"] == before["row_hash"]


async def test_raptor_may_not_verify(client: AppClient, db: Conn) -> None:
    response = await client.get("/api/internal/billing/audit/verify", headers=values.RAPTOR)
    assert response.status_code == 403


async def test_changed_row_is_named(client: AppClient, db: Conn) -> None:
    await _history(client)
    await _seal(client)
    await db.execute(UNGUARDED)
    await db.execute("UPDATE billing_action_log SET summary = '{\"after\": 1}' WHERE id = 3")
    report = await _verify(client)
    assert report["ok"] is False
    assert report["first_bad_id"] == 3


async def test_deleted_row_is_detected_at_its_successor(client: AppClient, db: Conn) -> None:
    await _history(client)
    await _seal(client)
    await db.execute(UNGUARDED)
    await db.execute("DELETE FROM billing_action_log WHERE id = 2")
    report = await _verify(client)
    assert report["ok"] is False
    assert report["first_bad_id"] == 3


async def test_swapped_rows_are_detected(client: AppClient, db: Conn) -> None:
    await _history(client)
    await _seal(client)
    await db.execute(UNGUARDED)
    # move row 2's content (and its hashes) to row 4 and back: a reorder
    await db.execute(
        """
        WITH a AS (SELECT * FROM billing_action_log WHERE id = 2),
             b AS (SELECT * FROM billing_action_log WHERE id = 4)
        UPDATE billing_action_log AS l
           SET action = s.action, event_id = s.event_id, summary = s.summary,
               prev_hash = s.prev_hash, row_hash = s.row_hash, occurred_at = s.occurred_at
          FROM (SELECT 2 AS target, b.* FROM b UNION ALL SELECT 4, a.* FROM a) AS s
         WHERE l.id = s.target
        """
    )
    report = await _verify(client)
    assert report["ok"] is False
    assert report["first_bad_id"] == 2


async def test_two_processes_append_one_chain(clean_db: str, db: Conn) -> None:
    env = {**os.environ}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.audit.append_worker",
                clean_db,
                values.AUDIT_KEY,
                "60",
                name,
            ],
            env=env,
        )
        for name in ("a", "b")
    ]
    codes = await asyncio.gather(*(asyncio.to_thread(p.wait, 120) for p in procs))
    assert codes == [0, 0]
    report = await verify_chain(db, KEY)
    assert report.as_dict() == {"ok": True, "rows": 120, "first_bad_id": None, "unsealed": 0}
    per_process = await db.fetch(
        "SELECT summary->>'process' AS p, count(*) FROM billing_action_log GROUP BY 1 ORDER BY 1"
    )
    assert [(r["p"], r["count"]) for r in per_process] == [("a", 60), ("b", 60)]


async def test_breaker_keeps_rows_unsealed_then_seals_them_in_order(
    app_factory: AppFactory, db: Conn
) -> None:
    async with app_factory(flag_billing_audit_writes=False) as client:
        await _history(client, 3)
        assert await _seal(client) == 0
        report = await _verify(client)
        assert report == {"ok": True, "rows": 3, "first_bad_id": None, "unsealed": 3}
        # billing went on meanwhile
        assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == 3
    async with app_factory(flag_billing_audit_writes=True) as client:
        await deliver_ok(client, invoice_event("invoice.paid", created=T0 + 50))
        assert await _seal(client) >= 0
        report = await _verify(client)
        assert report == {"ok": True, "rows": 4, "first_bad_id": None, "unsealed": 0}
    sealed_order = await db.fetch("SELECT id FROM billing_action_log ORDER BY sealed_at, id")
    assert [r["id"] for r in sealed_order] == [1, 2, 3, 4]


async def test_cli_audit_verify(clean_db: str, client: AppClient, db: Conn) -> None:
    await _history(client, 2)
    await _seal(client)
    ok = run_audit_verify(clean_db)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    await db.execute(UNGUARDED)
    await db.execute("UPDATE billing_action_log SET action = 'forged' WHERE id = 1")
    bad = run_audit_verify(clean_db)
    assert bad.returncode == 1
    assert json.loads(bad.stdout)["first_bad_id"] == 1


async def _waiting_on_a_lock(db: Conn, query_prefix: str) -> bool:
    return bool(
        await db.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE wait_event_type = 'Lock' AND query LIKE $1 || '%'",
            query_prefix,
        )
    )


async def test_sealing_waits_for_an_append_still_in_flight(clean_db: str, db: Conn) -> None:
    """A lower id committing after a higher one is sealed before it, never skipped."""
    appenders = Database(clean_db, max_size=2)
    sealers = Database(clean_db, max_size=1)
    await appenders.open()
    await sealers.open()
    try:
        async with appenders.transaction() as slow:
            first = await append_action(
                slow, actor="system", action="test.slow", queue_customer_id="a"
            )
            async with appenders.transaction() as fast:
                second = await append_action(
                    fast, actor="system", action="test.fast", queue_customer_id="b"
                )
            assert first < second  # the higher id is committed, the lower one is not
            sealing = asyncio.create_task(seal_pending(sealers, KEY))
            while not await _waiting_on_a_lock(db, "SELECT billing_audit_horizon"):
                await asyncio.sleep(0)  # let the sealer reach the lock
            assert not sealing.done()
        # the slow append commits: the round goes on and seals both, in id order
        assert await sealing == 2
        rows = await db.fetch("SELECT id, prev_hash FROM billing_action_log ORDER BY id")
        assert [r["id"] for r in rows] == [first, second]
        report = await verify_chain(db, KEY)
        assert report.as_dict() == {"ok": True, "rows": 2, "first_bad_id": None, "unsealed": 0}
    finally:
        await appenders.close()
        await sealers.close()


async def test_appends_go_on_while_a_round_seals(clean_db: str, db: Conn) -> None:
    """The table lock is held only to find the horizon, not while hashing and writing."""
    pool = Database(clean_db, max_size=3)
    await pool.open()
    try:
        for i in range(5):
            async with pool.transaction() as tx:
                await append_action(tx, actor="system", action="test.a", queue_customer_id=str(i))
        async with pool.transaction() as other_sealer:
            await other_sealer.conn.execute(ONE_SEALER)  # another process's round, in progress
            sealing = asyncio.create_task(seal_pending(pool, KEY))
            while not await _waiting_on_a_lock(db, ONE_SEALER):
                await asyncio.sleep(0)  # past its horizon, waiting for its turn
            async with pool.transaction() as tx:  # meanwhile appends are not held back
                await append_action(tx, actor="system", action="test.b", queue_customer_id="x")
        # the round seals up to its horizon; the later append waits for the next one
        assert await sealing == 5
        assert (
            await db.fetchval("SELECT count(*) FROM billing_action_log WHERE row_hash IS NULL") == 1
        )
        assert await seal_pending(pool, KEY) == 1
        report = await verify_chain(db, KEY)
        assert report.as_dict() == {"ok": True, "rows": 6, "first_bad_id": None, "unsealed": 0}
    finally:
        await pool.close()
