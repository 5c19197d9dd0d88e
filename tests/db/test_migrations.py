"""Real sqitch on an empty database: deploy --verify, revert, deploy again."""

from __future__ import annotations

import os

import asyncpg
import pytest

from raxx_queue.db.migrate import plan_head, revert, verify
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
