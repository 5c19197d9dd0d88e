"""Real sqitch on an empty database: deploy --verify, revert, deploy again."""

from __future__ import annotations

import json
import os

import asyncpg
import pytest

from raxx_queue.db.migrate import plan_head, revert, run_sqitch, verify
from tests.support.database import MIGRATIONS, TABLES, create_database, drop_database, migrate
from tests.support.process import run_cli


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await conn.close()
    return {r["tablename"] for r in rows}


async def test_deploy_revert_deploy_on_an_empty_database(pg_server: str) -> None:
    url = await create_database(pg_server, prefix="queue_migrations")
    try:
        output = migrate(url)
        assert "billing_customer" in output
        assert set(TABLES) <= await _tables(url)
        verify(url, MIGRATIONS)

        revert(url, MIGRATIONS)
        assert not set(TABLES) & await _tables(url)

        migrate(url)
        assert set(TABLES) <= await _tables(url)
        verify(url, MIGRATIONS)
    finally:
        await drop_database(pg_server, url)


async def test_cli_migrate_runs_sqitch_against_database_url(pg_server: str) -> None:
    url = await create_database(pg_server, prefix="queue_cli_migrate")
    try:
        env = {**os.environ, "DATABASE_URL": url, "QUEUE_ENV": "staging"}
        result = run_cli("migrate", env=env)
        assert result.returncode == 0, result.stderr
        assert url not in result.stdout + result.stderr
        conn = await asyncpg.connect(url)
        try:
            head = await conn.fetchval(
                "SELECT change FROM sqitch.changes ORDER BY committed_at DESC LIMIT 1"
            )
        finally:
            await conn.close()
        assert head == plan_head(MIGRATIONS).change
    finally:
        await drop_database(pg_server, url)


async def test_audit_log_is_append_only(db: asyncpg.Connection[asyncpg.Record]) -> None:
    await db.execute(
        "INSERT INTO billing_action_log (actor, action, summary) VALUES ('system', 'test', '{}')"
    )
    for statement in (
        "UPDATE billing_action_log SET action = 'changed'",
        "DELETE FROM billing_action_log",
    ):
        with pytest.raises(asyncpg.PostgresError) as error:
            await db.execute(statement)
        assert error.value.sqlstate == "QU002"


HOT_TABLES = (
    "processed_stripe_events",
    "billing_action_log",
    "billing_subscription",
    "billing_subscription_mirror",
    "billing_invoice",
)


async def _files(url: str) -> dict[str, int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT relname, relfilenode FROM pg_class WHERE relname = ANY($1::text[])",
            list(HOT_TABLES),
        )
    finally:
        await conn.close()
    return {r["relname"]: r["relfilenode"] for r in rows}


BAD_ROWS = (
    "INSERT INTO billing_action_log (actor, action) VALUES ('nobody', 'x')",
    "INSERT INTO processed_stripe_events"
    " (event_id, type, outcome, event_created_at, source, payload)"
    " VALUES ('evt_x', 't', 'applied', now(), 'elsewhere', '{}')",
)


async def _refused(url: str, *constraints: str) -> None:
    """Each of BAD_ROWS is refused by the named check, and nothing is written."""
    conn = await asyncpg.connect(url)
    try:
        for statement, constraint in zip(BAD_ROWS, constraints, strict=True):
            with pytest.raises(asyncpg.CheckViolationError, match=constraint):
                await conn.execute(statement)
        assert await conn.fetchval("SELECT count(*) FROM billing_action_log") == 0
        assert await conn.fetchval("SELECT count(*) FROM processed_stripe_events") == 0
    finally:
        await conn.close()


async def test_value_checks_become_domains_without_rewriting_a_table(pg_server: str) -> None:
    """billing_write_costs moves the hot tables' value checks into domains. A column
    changed to a domain that has a check is rewritten under an exclusive lock (every
    stored event, at deploy time); the change must not do that, either way, and the
    rules must hold for every value written after it."""
    url = await create_database(pg_server, prefix="queue_domains")
    try:
        run_sqitch(["deploy", "--to", "billing_write_costs^"], url, MIGRATIONS)
        before = await _files(url)
        assert set(before) == set(HOT_TABLES)

        run_sqitch(["deploy", "--verify", "--to", "billing_write_costs"], url, MIGRATIONS)
        assert await _files(url) == before
        await _refused(url, "billing_actor_check", "billing_event_source_check")

        run_sqitch(["revert", "-y", "--to", "billing_write_costs^"], url, MIGRATIONS)
        assert await _files(url) == before
        await _refused(
            url, "billing_action_log_actor_check", "processed_stripe_events_source_check"
        )
    finally:
        await drop_database(pg_server, url)


async def test_reverting_the_raw_copy_puts_each_payload_back_whole(pg_server: str) -> None:
    """billing_event_raw_copy stores a delivery's body beside a stub payload; reverting
    it must leave every stored event whole in `payload`, as the schema before reads it."""
    url = await create_database(pg_server, prefix="queue_raw_copy")
    event = {
        "id": "evt_raw1",
        "object": "event",
        "type": "payout.paid",
        "created": 1_700_000_000,
        "data": {"object": {"id": "po_1", "object": "payout", "description": "all of it"}},
    }
    raw = json.dumps(event, indent=1)  # as sent: its own spacing
    stub = {**event, "data": {"object": {"id": "po_1", "object": "payout"}}}
    params = {
        "event_id": event["id"],
        "type": event["type"],
        "created": event["created"],
        "family": "ignored",
        "payload": stub,
    }
    try:
        run_sqitch(["deploy", "--verify", "--to", "billing_event_raw_copy"], url, MIGRATIONS)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "SELECT * FROM billing_apply_stripe_event($1::jsonb, $2)", json.dumps(params), raw
            )
        finally:
            await conn.close()

        run_sqitch(["revert", "-y", "--to", "billing_event_raw_copy^"], url, MIGRATIONS)
        conn = await asyncpg.connect(url)
        try:
            stored = await conn.fetchval(
                "SELECT payload FROM processed_stripe_events WHERE event_id = $1", event["id"]
            )
        finally:
            await conn.close()
        assert json.loads(stored) == event
        run_sqitch(["deploy", "--verify"], url, MIGRATIONS)
    finally:
        await drop_database(pg_server, url)
