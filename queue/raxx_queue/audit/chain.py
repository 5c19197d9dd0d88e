"""The audit chain: row_hash = HMAC-SHA256(key, prev_hash ‖ canonical row), in id order.

Rows are appended unsealed by the transaction that made the change (cheap, no global
serialisation on the webhook path) and sealed later, in rounds. A round first finds
its horizon: one statement (billing_audit_horizon) takes a SHARE ROW EXCLUSIVE lock on
the table, which waits for every appender in flight (an INSERT holds ROW EXCLUSIVE
from before it draws its id until its transaction ends), reads the highest id, and
commits at once. Every id up to that
horizon is then committed or gone for good, and every later append draws a higher
id, so sealing up to it in id order can never skip a late commit. Appenders queue
behind the lock only while it waits for the ones in flight; the hashing and the
writes run outside it, and sealers (one per process) take turns on an advisory lock
so the chain cannot fork.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from raxx_queue.db.pool import Connection, Database
from raxx_queue.errors import ServiceError


class AuditKeyMissing(ServiceError):
    status = 503
    code = "AUDIT_NOT_CONFIGURED"

    def __init__(self) -> None:
        super().__init__("BILLING_AUDIT_HMAC_KEY is not configured")


GENESIS = "0" * 64
SEAL_BATCH = 2000

_ROW_COLUMNS = (
    "id, occurred_at, actor, action, queue_customer_id, stripe_object_id, event_id,"
    " request_id, summary, prev_hash, row_hash"
)
# Appenders queue behind the sealer's table lock, and other sealers behind its advisory
# lock: it must never wait long for either, and if this process stalls while holding
# one, Postgres ends the session and frees them.
SEALING_TIMEOUTS = (
    "SET LOCAL lock_timeout = '2s'; SET LOCAL idle_in_transaction_session_timeout = '5s'"
)
# The lock, the read and the commit in one statement: no round trip to this process
# while appenders queue behind the lock (migrations/sqitch/deploy/billing_audit_horizon.sql).
HORIZON = "SELECT billing_audit_horizon($1)"
HORIZON_LOCK_TIMEOUT = "2s"
# sealers only: appenders never take it
ONE_SEALER = "SELECT pg_advisory_xact_lock(hashtextextended('billing_action_log:sealer', 0))"
LAST_SEALED = (
    "SELECT row_hash FROM billing_action_log WHERE row_hash IS NOT NULL ORDER BY id DESC LIMIT 1"
)
UNSEALED = f"""
SELECT {_ROW_COLUMNS} FROM billing_action_log
 WHERE row_hash IS NULL AND id <= $2 ORDER BY id LIMIT $1
"""  # noqa: S608 - constant column list
SEAL = """
UPDATE billing_action_log AS l
   SET prev_hash = s.prev_hash, row_hash = s.row_hash, sealed_at = now()
  FROM unnest($1::bigint[], $2::text[], $3::text[]) AS s(id, prev_hash, row_hash)
 WHERE l.id = s.id
"""
COUNT_UNSEALED = "SELECT count(*) FROM billing_action_log WHERE row_hash IS NULL"
# Pages by id rather than a server-side cursor: a cursor needs a named prepared
# statement, which a transaction pooler leaves behind on a server session that the
# next process's asyncpg then collides with.
WALK_PAGE = f"""
SELECT {_ROW_COLUMNS} FROM billing_action_log WHERE id > $1 ORDER BY id LIMIT $2
"""  # noqa: S608
WALK_PAGE_SIZE = 1000
BEFORE_FIRST_ID = -(2**63)


def canonical(row: asyncpg.Record | dict[str, Any]) -> bytes:
    """The bytes a row's hash covers: every column but the hashes, in a fixed form."""
    summary = row["summary"]
    if isinstance(summary, str):  # a connection without the jsonb codec
        summary = orjson.loads(summary)
    return orjson.dumps(
        {
            "id": row["id"],
            "occurred_at": row["occurred_at"].isoformat(),
            "actor": row["actor"],
            "action": row["action"],
            "queue_customer_id": row["queue_customer_id"],
            "stripe_object_id": row["stripe_object_id"],
            "event_id": row["event_id"],
            "request_id": row["request_id"],
            "summary": summary,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def row_hash(key: bytes, prev_hash: str, row: asyncpg.Record | dict[str, Any]) -> str:
    message = prev_hash.encode() + b"\x1e" + canonical(row)
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def chain(key: bytes, prev: str, rows: Iterable[asyncpg.Record]) -> list[tuple[int, str, str]]:
    """(id, prev_hash, row_hash) for rows sealed after prev, in order."""
    sealed = []
    for row in rows:
        digest = row_hash(key, prev, row)
        sealed.append((row["id"], prev, digest))
        prev = digest
    return sealed


async def settled_horizon(db: Database) -> int:
    """The highest id at a moment when no append was in flight (see the module's doc)."""
    horizon: int = await db.fetchval(HORIZON, HORIZON_LOCK_TIMEOUT)
    return horizon


async def seal_pending(db: Database, key: bytes, batch: int = SEAL_BATCH) -> int:
    """Seal unsealed rows into the chain, oldest first; returns how many were sealed."""
    return await seal_up_to(db, key, await settled_horizon(db), batch)


async def seal_up_to(db: Database, key: bytes, horizon: int, batch: int = SEAL_BATCH) -> int:
    """Seal up to `batch` unsealed rows with ids up to a settled horizon, oldest first."""
    async with db.connection() as conn, conn.transaction():
        await conn.execute(SEALING_TIMEOUTS)
        await conn.execute(ONE_SEALER)
        prev = await conn.fetchval(LAST_SEALED) or GENESIS
        rows = await conn.fetch(UNSEALED, batch, horizon)
        if not rows:
            return 0
        sealed = chain(key, prev, rows)
        await conn.execute(
            SEAL, [s[0] for s in sealed], [s[1] for s in sealed], [s[2] for s in sealed]
        )
    return len(sealed)


async def count_unsealed(conn: Connection) -> int:
    count: int = await conn.fetchval(COUNT_UNSEALED)
    return count


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int
    first_bad_id: int | None
    unsealed: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "first_bad_id": self.first_bad_id,
            "unsealed": self.unsealed,
        }


async def _walk(conn: Connection) -> AsyncIterator[asyncpg.Record]:
    """Every row in id order, a page at a time, inside the caller's snapshot."""
    after = BEFORE_FIRST_ID
    while True:
        page = await conn.fetch(WALK_PAGE, after, WALK_PAGE_SIZE)
        for row in page:
            yield row
        if len(page) < WALK_PAGE_SIZE:
            return
        after = page[-1]["id"]


async def verify_chain(conn: Connection, key: bytes) -> ChainReport:
    """Walk the log in id order; name the first row changed, removed before, or reordered."""
    prev = GENESIS
    rows = 0
    unsealed = 0
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        async for row in _walk(conn):
            rows += 1
            if row["row_hash"] is None:
                unsealed += 1
                continue
            if unsealed:  # a sealed row after an unsealed one: the chain was edited
                return ChainReport(False, rows, row["id"], unsealed)
            if row["prev_hash"] != prev or not hmac.compare_digest(
                row_hash(key, prev, row), row["row_hash"]
            ):
                return ChainReport(False, rows, row["id"], unsealed)
            prev = row["row_hash"]
    return ChainReport(True, rows, None, unsealed)
