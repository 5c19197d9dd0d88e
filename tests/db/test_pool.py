"""The pool hands a connection back as it found it, without a reset round trip, and
Postgres ends a session its process left idle inside a transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from raxx_queue.db.pool import Database
from tests.support.database import Conn


@pytest.fixture
async def one_connection(clean_db: str) -> AsyncIterator[Database]:
    """A pool of one: every acquire gets the same connection back."""
    db = Database(clean_db, max_size=1)
    await db.open()
    yield db
    await db.close()


async def test_a_request_is_one_statement_on_the_wire(one_connection: Database) -> None:
    statements: list[str] = []
    async with one_connection.connection() as conn:
        conn.add_query_logger(lambda record: statements.append(record.query))
    for _ in range(3):
        assert await one_connection.fetchval("SELECT 1") == 1
    # asyncpg's default reset would add a statement (UNLISTEN, RESET ALL, ...) per release
    assert statements == ["SELECT 1"] * 3


async def test_a_transaction_left_open_is_rolled_back(one_connection: Database) -> None:
    async with one_connection.connection() as conn:
        await conn.execute("BEGIN")
        await conn.execute("CREATE TABLE left_open (id int)")
        # released mid-transaction, as a request cancelled by its client is
    async with one_connection.connection() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT to_regclass('left_open')") is None


async def test_a_transaction_left_idle_by_a_stalled_process_is_ended(
    clean_db: str, db: Conn
) -> None:
    """A frozen process's open transaction frees its locks: the session is ended."""
    stalled = Database(clean_db, max_size=1, idle_in_transaction_timeout=0.2)
    await stalled.open()
    try:
        async with stalled.connection() as conn:
            await conn.execute("BEGIN")
            await conn.execute("SELECT pg_advisory_xact_lock(42)")
            pid = conn.get_server_pid()
            # the process stops talking: Postgres ends the session on its own
            while await db.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid):
                await asyncio.sleep(0.05)  # the server's timer: nothing to await
            assert await db.fetchval("SELECT pg_try_advisory_lock(42)") is True
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, OSError)):
                await conn.execute("COMMIT")
    finally:
        await stalled.close()


async def test_the_service_pool_caps_idle_transactions(clean_db: str) -> None:
    db = Database(clean_db, max_size=1)
    await db.open()
    try:
        assert await db.fetchval("SHOW idle_in_transaction_session_timeout") == "30s"
    finally:
        await db.close()
