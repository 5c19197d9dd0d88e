"""Deliveries that arrive together, applied together: one statement, one commit.

One delivery at a time, each event is its own statement (`billing_apply_stripe_event`),
which commits by itself, run by the request that brought it. While a worker's statement
is running, deliveries that arrive wait, and its next statement takes up to MAX_BATCH of
them at once (`billing_apply_stripe_events`): the same function for each event, in one
transaction, so one round trip, one commit and one WAL flush for all of them. Nobody
waits for a batch to fill: a statement starts as soon as one is free to, with whatever
is waiting.

Every guarantee is per event as before: each delivery is answered only once the
statement that applied it has committed, with its own outcome. Any error rolls the
whole statement back; each of its events is then applied on its own, as if it had come
alone, so one event's error (a value Postgres cannot store, a same-second conflict) is
its own and the others are still applied. A database that is away fails them all, as
it would have one by one.

Within a batch the events go in order of their Stripe customer (stable, so one
customer's events keep their order of arrival): two workers' statements then take
customers' locks in the same order, and do not deadlock each other on them.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import structlog

from raxx_queue.db.pool import Database
from raxx_queue.errors import DatabaseUnavailable
from raxx_queue.metrics import WEBHOOK_BATCH_SPLITS, WEBHOOK_STATEMENT_EVENTS

log = structlog.get_logger(__name__)

Json = dict[str, Any]

APPLY_EVENT = """
SELECT outcome, queue_customer_id, mirror_changed, mirror_version, access_change
  FROM billing_apply_stripe_event($1::jsonb)
"""
APPLY_EVENTS = """
SELECT n, outcome, queue_customer_id, mirror_changed, mirror_version, access_change
  FROM billing_apply_stripe_events($1::jsonb, $2)
"""
# How long a batch may wait for a lock (another worker's batch holding a customer takes
# milliseconds): past it, the batch gives way and its events are applied on their own,
# so a customer held for long (an erasure, a stuck session) holds up only its own events
LOCK_WAIT = "250ms"
# events per statement: enough to share a commit among a burst, small enough that a
# batch holds its customers' locks for a few milliseconds
MAX_BATCH = 32


async def apply_one(db: Database, params: Json) -> asyncpg.Record:
    """Apply one event in its own statement (it commits by itself: no BEGIN, no COMMIT)."""
    async with db.autocommit() as tx:
        row = await tx.conn.fetchrow(APPLY_EVENT, params)
        assert row is not None
        tx.effects.audited = row["outcome"] == "applied"
        tx.effects.mirror_changed = row["mirror_changed"]
    WEBHOOK_STATEMENT_EVENTS.observe(1)
    return row


def _lock_order(params: Json) -> str:
    return str(params.get("stripe_customer_id") or "")


async def apply_many(db: Database, batch: list[Json]) -> list[asyncpg.Record]:
    """Apply events in one statement; their rows, in the order given. Any error: none is."""
    order = sorted(range(len(batch)), key=lambda i: _lock_order(batch[i]))
    async with db.autocommit() as tx:
        rows = await tx.conn.fetch(APPLY_EVENTS, [batch[i] for i in order], LOCK_WAIT)
        tx.effects.audited = any(row["outcome"] == "applied" for row in rows)
        tx.effects.mirror_changed = any(row["mirror_changed"] for row in rows)
    if len(rows) != len(batch):
        raise RuntimeError(f"{len(batch)} events applied, {len(rows)} answers")
    answers = {order[row["n"] - 1]: row for row in rows}
    WEBHOOK_STATEMENT_EVENTS.observe(len(batch))
    return [answers[i] for i in range(len(batch))]


@dataclass
class _Waiting:
    params: Json
    answer: asyncio.Future[asyncpg.Record] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def settle(self, row: asyncpg.Record) -> None:
        if not self.answer.done():
            self.answer.set_result(row)

    def fail(self, error: BaseException) -> None:
        if not self.answer.done():
            self.answer.set_exception(error)


class EventBatcher:
    """One process's way to billing_apply_stripe_event(s): a delivery waits only for a
    statement to be free, then goes with whatever else is waiting.

    One statement at a time: measured against two, three and four at once
    (docs/performance.md), the larger batches cost less per event than statements
    running side by side."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: list[_Waiting] = []
        self._draining = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """Deliveries waiting for a statement (not those in one)."""
        return len(self._waiting)

    async def apply(self, params: Json) -> asyncpg.Record:
        """The event's row of billing_apply_stripe_event, once its statement committed."""
        if self._draining:
            waiting = _Waiting(params)
            self._waiting.append(waiting)
            return await waiting.answer
        # no statement running: this delivery's is the next, run by its own request
        # (no hand-over to another task and back); what arrives meanwhile waits for it
        self._draining = True
        try:
            return await apply_one(self._db, params)
        finally:
            if self._waiting:
                # the drain takes over (still draining); a statement serves several
                # requests: its log lines name none of them
                contextvars.Context().run(self._spawn, self._drain())
            else:
                self._draining = False

    def _take(self) -> list[_Waiting]:
        """What is waiting, up to a batch; a request that went away is left out."""
        batch = [w for w in self._waiting[:MAX_BATCH] if not w.answer.done()]
        del self._waiting[:MAX_BATCH]
        return batch

    async def _drain(self) -> None:
        """Statements one after another, each taking what waits as it starts."""
        batch: list[_Waiting] = []
        try:
            while self._waiting:
                batch = self._take()
                if len(batch) == 1:
                    await self._alone(batch[0])
                elif batch:
                    await self._together(batch)
        except asyncio.CancelledError:
            for waiting in [*batch, *self._waiting]:
                waiting.answer.cancel()
            self._waiting.clear()
            raise
        finally:
            self._draining = False

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _one_by_one(self, events: list[_Waiting]) -> None:
        for waiting in events:
            await self._alone(waiting)

    async def _alone(self, waiting: _Waiting) -> None:
        try:
            row = await apply_one(self._db, waiting.params)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the request raises it, as if it had run it
            waiting.fail(error)
        else:
            waiting.settle(row)

    async def _together(self, batch: list[_Waiting]) -> None:
        try:
            rows = await apply_many(self._db, [waiting.params for waiting in batch])
        except DatabaseUnavailable:
            for waiting in batch:
                waiting.fail(DatabaseUnavailable())
            return
        except Exception as error:
            # rolled back: each on its own, so the error stays with its event; one
            # customer's events in order, customers side by side, and the next batch
            # does not wait for them (one of them may wait long for its customer's lock)
            WEBHOOK_BATCH_SPLITS.inc()
            log.info(
                "webhook_batch_split",
                events=len(batch),
                error_type=type(error).__name__,
                sqlstate=getattr(error, "sqlstate", None),
            )
            by_customer: dict[str, list[_Waiting]] = {}
            for waiting in batch:
                by_customer.setdefault(_lock_order(waiting.params), []).append(waiting)
            for events in by_customer.values():
                self._spawn(self._one_by_one(events))
            return
        for waiting, row in zip(batch, rows, strict=True):
            waiting.settle(row)
