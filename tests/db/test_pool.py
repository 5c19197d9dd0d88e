"""The pool hands a connection back as it found it, without a reset round trip; a
connection back from a use is kept for the next, unless a use waits on the pool; and
Postgres ends a session its process left idle inside a transaction."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from raxx_queue.db.pool import WARM_CONNECTIONS, Database
from tests.support.database import Conn


@pytest.fixture(params=[WARM_CONNECTIONS, 0], ids=["kept warm", "through the pool"])
async def one_connection(clean_db: str, request: pytest.FixtureRequest) -> AsyncIterator[Database]:
    """A pool of one: every use gets the same connection, kept between uses or handed
    back to asyncpg's pool and acquired again."""
    db = Database(clean_db, max_size=1, warm=request.param)
    await db.open()
    yield db
    await db.close()


async def test_a_request_is_one_statement_on_the_wire(one_connection: Database) -> None:
    statements: list[str] = []
    async with one_connection.connection() as conn:
        conn.add_query_logger(lambda record: statements.append(record.query))
    for _ in range(3):
        assert await one_connection.fetchval("SELECT 1") == 1
    await asyncio.sleep(0)  # asyncpg calls query loggers with call_soon
    # asyncpg's default reset would add a statement (UNLISTEN, RESET ALL, ...) per release
    assert statements == ["SELECT 1"] * 3


async def _pid(db: Database) -> int:
    async with db.connection() as conn:
        pid: int = conn.get_server_pid()
        return pid


async def test_a_connection_back_from_a_use_serves_the_next(clean_db: str) -> None:
    """Kept out of the pool between uses: the next use takes the same session, which
    the pool meanwhile counts as lent, not idle."""
    db = Database(clean_db, max_size=2)
    await db.open()
    try:
        first = await _pid(db)
        assert db.warm_connections == 1
        assert db.pool.get_idle_size() == 0
        assert await _pid(db) == first
    finally:
        await db.close()


async def test_a_use_waiting_on_the_pool_gets_the_connection_back(clean_db: str) -> None:
    """A pool of one, its connection in use, and a second use waiting for it: when the
    first ends, the connection goes to the one waiting, not to the warm ones."""
    db = Database(clean_db, max_size=1)
    await db.open()
    try:
        holding, done = asyncio.Event(), asyncio.Event()

        async def first() -> int:
            async with db.connection() as conn:
                holding.set()
                await done.wait()
                pid: int = conn.get_server_pid()
                return pid

        held = asyncio.create_task(first())
        await holding.wait()
        second = asyncio.create_task(_pid(db))
        while not db.pool_waiters:  # the second use reaches the pool's queue
            await asyncio.sleep(0)
        done.set()
        # within the acquire's own bound (5 s): a connection kept warm would leave the
        # second use waiting until DatabaseUnavailable
        assert await second == await held
    finally:
        await db.close()


async def test_a_connection_whose_use_failed_goes_back_to_the_pool(
    one_connection: Database,
) -> None:
    async def fails() -> None:
        async with one_connection.connection() as conn:
            await conn.execute("BEGIN")
            await conn.fetchval("SELECT 1 / 0")

    with pytest.raises(asyncpg.DivisionByZeroError):
        await fails()
    assert one_connection.warm_connections == 0
    async with one_connection.connection() as conn:
        assert not conn.is_in_transaction()
        assert await conn.fetchval("SELECT 1") == 1


async def test_closing_hands_back_the_warm_connections(clean_db: str) -> None:
    """asyncpg's close waits for every connection it lent: one kept warm and not handed
    back would hold it to its deadline (an hour here), then be cut off."""
    service = Database(clean_db, max_size=2)
    await service.open()
    await _pid(service)
    assert service.warm_connections == 1
    # a bound on a hang, not a timing: a graceful close takes milliseconds
    await asyncio.wait_for(service.close(timeout=3600), 30)
    assert service.warm_connections == 0


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
