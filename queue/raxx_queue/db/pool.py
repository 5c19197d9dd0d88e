"""The asyncpg pool, owned by the app lifespan; connection failures become 503s."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import asyncpg
import orjson
import structlog

from raxx_queue.db.pooling import pool_options, transaction_preamble
from raxx_queue.errors import DatabaseUnavailable
from raxx_queue.jsonio import dumps_str
from raxx_queue.settings import PoolMode

log = structlog.get_logger(__name__)

# Errors that mean "the database is not there", as opposed to a bad query.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    # the protocol is mid-way through a failure it has not finished reading (a backend
    # terminated while the connection sat in the pool): the connection is unusable
    asyncpg.exceptions.InternalClientError,
)
UNAVAILABLE: tuple[type[BaseException], ...] = (DatabaseUnavailable, *CONNECTION_ERRORS)


def connection_lost(error: BaseException) -> bool:
    """A connection error, not asyncpg's client-side DataError (an InterfaceError and a
    ValueError raised for a query argument it cannot encode: bad input, not an outage)."""
    return isinstance(error, CONNECTION_ERRORS) and not isinstance(error, ValueError)


Connection: TypeAlias = (
    "asyncpg.Connection[asyncpg.Record] | asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"
)
PoolProxy: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"

# Connections a process keeps between two uses, out of asyncpg's pool: the next use
# takes one without the pool's acquire and release, which start two asyncio tasks per
# use (the acquire's timeout, the release's shield): 15% of a webhook's instructions in
# the worker (docs/performance.md, "Ninth look"). A lane's two statements, the audit
# sealer and the mirror dispatcher: the rest go back to the pool, whose idle limit
# closes them.
WARM_CONNECTIONS = 4


async def _init_connection(conn: Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name, encoder=dumps_str, decoder=orjson.loads, schema="pg_catalog", format="text"
        )


async def _keep_session(conn: Connection) -> None:
    """What a connection needs on its way back to the pool: nothing more.

    asyncpg rolls back a transaction left open before calling this; its default reset
    would also send `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`,
    a round trip on every request for session state Queue never creates (its advisory
    locks and settings are transaction-scoped, it neither LISTENs nor opens cursors
    outside a transaction).
    """


# No request keeps a transaction open across anything slower than its own statements
# (Stripe calls happen outside them). A process that stops mid-transaction (frozen,
# cut off from the network) must not hold its row and advisory locks, and so a
# customer's webhooks, for longer than this: Postgres ends such a session.
IDLE_IN_TRANSACTION_SECONDS = 30.0


@dataclass
class Effects:
    """What a committed write changed that the background workers act on."""

    audited: bool = False  # audit rows appended: the sealer has work
    mirror_changed: bool = False  # a mirror row is due for a push: the dispatcher has work

    def __bool__(self) -> bool:
        return self.audited or self.mirror_changed


@dataclass
class Transaction:
    """A connection inside one transaction, and what the writes in it reported.

    Writers that append audit rows or change mirror rows take the Transaction and
    record that in `effects`; once it commits, the database hands them to its
    `on_commit` (the app's wake-ups). A rolled-back transaction reports nothing.
    """

    conn: Connection
    effects: Effects = field(default_factory=Effects)


class Database:
    """A lazily connecting pool: the service binds its port even while Postgres is away."""

    def __init__(
        self,
        dsn: str,
        *,
        max_size: int = 10,
        command_timeout: float = 30.0,
        idle_in_transaction_timeout: float = IDLE_IN_TRANSACTION_SECONDS,
        on_commit: Callable[[Effects], None] | None = None,
        mode: PoolMode = PoolMode.SESSION,
        warm: int = WARM_CONNECTIONS,
    ) -> None:
        self._dsn = dsn
        self._warm_cap = warm
        self._on_commit = on_commit
        self._max_size = max_size
        self._command_timeout = command_timeout
        self._idle_in_transaction_ms = str(round(idle_in_transaction_timeout * 1000))
        self._mode = mode
        self._preamble = transaction_preamble(mode, self._idle_in_transaction_ms)
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None
        # connections between two uses, kept out of the pool (see WARM_CONNECTIONS)
        self._warm: list[PoolProxy] = []
        self._waiting = 0  # uses waiting on the pool for a connection
        self._closing = False

    async def open(self) -> None:
        # min_size=0: creating the pool makes no connection, so a slow database
        # cannot hold up start-up; /ready reports it instead.
        self._pool = await asyncpg.create_pool(
            self._dsn,
            min_size=0,
            max_size=self._max_size,
            command_timeout=self._command_timeout,
            init=_init_connection,
            reset=_keep_session,
            max_inactive_connection_lifetime=300.0,
            **pool_options(self._mode, self._idle_in_transaction_ms),
        )

    async def close(self, timeout: float = 5.0) -> None:
        """Close gracefully, but within a bound: shutdown has a deadline."""
        if self._pool is not None:
            # the pool's close waits for every connection it lent: none is kept now
            self._closing = True
            await self._cool()
            try:
                await asyncio.wait_for(self._pool.close(), timeout)
            except TimeoutError:
                self._pool.terminate()
            self._pool = None

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise DatabaseUnavailable()
        return self._pool

    @asynccontextmanager
    async def connection(self, timeout: float = 5.0) -> AsyncIterator[Connection]:
        conn = self._warm.pop() if self._warm else await self._acquire(timeout)
        try:
            yield conn
        except CONNECTION_ERRORS as error:
            # the connection died under the request (terminated backend, network cut,
            # restart): 503 so the caller retries, never a 500
            if not connection_lost(error):
                await self._release(conn)
                raise
            log.warning("database_connection_lost", error_type=type(error).__name__)
            # never hand this connection to another request (if asyncpg has not
            # already taken it back, which a closed connection does by itself)
            with contextlib.suppress(asyncpg.InterfaceError):
                conn.terminate()
            await self._release(conn)
            # one lost connection (a restart, a failover, terminated backends) means the
            # idle ones likely are too: each is replaced at its next acquire rather than
            # failing one more request
            await self._cool()
            await self.pool.expire_connections()
            raise DatabaseUnavailable() from None
        except BaseException:
            # whatever the error left on the connection (a cancelled query, an open
            # transaction), asyncpg's release clears it
            await self._release(conn)
            raise
        if self._keeps_warm(conn):
            self._warm.append(conn)
        else:
            await self._release(conn)

    @property
    def warm_connections(self) -> int:
        """Connections kept between two uses."""
        return len(self._warm)

    @property
    def pool_waiters(self) -> int:
        """Uses waiting on asyncpg's pool (none is kept warm while any waits)."""
        return self._waiting

    async def _acquire(self, timeout: float) -> PoolProxy:
        self._waiting += 1
        try:
            return await self.pool.acquire(timeout=timeout)
        except CONNECTION_ERRORS:
            raise DatabaseUnavailable() from None
        finally:
            self._waiting -= 1

    def _keeps_warm(self, conn: PoolProxy) -> bool:
        """Whether a connection back from a use stays out of the pool for the next: only
        one left as a new one is (no transaction open, not closed), only while no use
        waits on the pool for a connection (it would wait on one kept here), and only
        up to `warm` (WARM_CONNECTIONS)."""
        if len(self._warm) >= self._warm_cap or self._waiting or self._closing:
            return False
        try:
            return not conn.is_closed() and not conn.is_in_transaction()
        except asyncpg.InterfaceError:  # lost, and already taken back by asyncpg
            return False

    async def _cool(self) -> None:
        """Hand the warm connections back to the pool (which closes those expired)."""
        warm, self._warm = self._warm, []
        for conn in warm:
            await self._release(conn)

    async def _release(self, conn: PoolProxy) -> None:
        try:
            await self.pool.release(conn)
        except CONNECTION_ERRORS as error:
            # resetting a broken connection failed: asyncpg has terminated it and freed
            # its slot; the request's own outcome stands
            if not connection_lost(error):
                raise
            log.warning("database_connection_lost_on_release", error_type=type(error).__name__)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One transaction: the single place writes open one; effects follow its commit."""
        async with self.connection() as conn, conn.transaction():
            if self._preamble is not None:
                await conn.execute(self._preamble)
            tx = Transaction(conn)
            yield tx
        self._committed(tx.effects)

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Transaction]:
        """A connection whose statements commit one by one (a write of one statement
        needs no BEGIN and COMMIT round trips); effects follow the block."""
        async with self.connection() as conn:
            tx = Transaction(conn)
            yield tx
        self._committed(tx.effects)

    def _committed(self, effects: Effects) -> None:
        if effects and self._on_commit is not None:
            self._on_commit(effects)

    async def ping(self, timeout: float = 1.0) -> bool:
        try:
            async with self.connection(timeout=timeout) as conn:
                await conn.fetchval("SELECT 1", timeout=timeout)
        except UNAVAILABLE:
            return False
        return True

    async def fetchval(self, query: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(query, *args)
