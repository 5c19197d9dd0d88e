"""Deliveries that arrive together, applied together: one statement, one commit.

One delivery at a time, each event is its own statement, which commits by itself, run
by the request that brought it. While a worker's statement is running, deliveries that
arrive wait, and a later statement takes up to MAX_BATCH of them at once. Either way the
statement is `billing_apply_stripe_events`: `billing_apply_stripe_event` for each event,
in one transaction, so one round trip, one commit and one WAL flush for all of them, and
at most LOCK_WAIT on any customer's lock. Nobody waits for a batch to fill: a statement
starts as soon as one is free to, with whatever is waiting.

A worker's statements form a lane: each takes the worker's lane lock before its first
event and holds it to its commit, so they run in Postgres one at a time, in the order
they reached it. A worker that is the service's only one sends two at once: the second
waits in Postgres for the first to commit and starts at once after it, without waiting
for the worker to read the first's answer and send the next; the worker meanwhile
answers and reads the other group of deliveries. The second is sent once as many
deliveries wait as the running one holds, so that the lane keeps whole batches rather
than a trickle of small ones. With several workers each sends one at a time: the
others' statements keep Postgres busy (lane_depth).

Every guarantee is per event as before: each delivery is answered only once the
statement that applied it has committed, with its own outcome. Any error rolls the
whole statement back; each of its events is then applied on its own, outside the lane,
as if it had come alone, so one event's error (a value Postgres cannot store, a
same-second conflict) is its own and the others are still applied. A database that is
away fails them all, as it would have one by one.

Within a batch the events go in order of their Stripe customer (stable, so one
customer's events keep their order of arrival): two workers' statements then take
customers' locks in the same order, and do not deadlock each other on them. The lane
lock is taken before any customer's lock, and no other statement takes it.
"""

from __future__ import annotations

import asyncio
import contextvars
import secrets
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
  FROM billing_apply_stripe_event($1::jsonb, $2::text)
"""
# The lane lock is the argument's subquery: taken before the function's first statement
# and, as a transaction lock, held to the commit. It waits without the batch's
# LOCK_WAIT (set inside the function): only as long as the lane's statement before it,
# which gives way after LOCK_WAIT on any customer's lock.
APPLY_EVENTS_IN_LANE = """
SELECT n, outcome, queue_customer_id, mirror_changed, mirror_version, access_change
  FROM billing_apply_stripe_events((SELECT $1::jsonb FROM pg_advisory_xact_lock($3, $4)), $2,
                                   $5::text[])
"""
# The advisory lock class of the lanes: the two-integer form, which never meets the
# one-integer locks of customers and sealers; the second is the worker's (random).
LANE_CLASS = 0x51554555
# How long a batch may wait for a lock (another worker's batch holding a customer takes
# milliseconds): past it, the batch gives way and its events are applied on their own,
# so a customer held for long (an erasure, a stuck session) holds up only its own events
LOCK_WAIT = "250ms"
# events per statement: enough to share a commit among a burst, small enough that a
# batch holds its customers' locks for a few milliseconds
MAX_BATCH = 32
# statements sent at once by a worker that is the only one: one running in Postgres,
# one waiting there (see lane_depth)
STATEMENTS = 2


def lane_depth(workers: int) -> int:
    """Statements a worker sends at once. Two when it is the service's only worker:
    Postgres would otherwise idle between its statements. One with several workers:
    the others' statements fill those gaps, and measured, the second statement only
    made batches smaller and events dearer (docs/performance.md)."""
    return STATEMENTS if workers == 1 else 1


async def apply_one(db: Database, params: Json, raw: str | None = None) -> asyncpg.Record:
    """Apply one event in its own statement (it commits by itself: no BEGIN, no COMMIT),
    outside any lane, with no limit on its lock waits. `raw`: the delivery's body, stored
    as the event's raw copy (pipeline.stored_payload)."""
    async with db.autocommit() as tx:
        row = await tx.conn.fetchrow(APPLY_EVENT, params, raw)
        assert row is not None
        tx.effects.audited = row["outcome"] == "applied"
        tx.effects.mirror_changed = row["mirror_changed"]
    WEBHOOK_STATEMENT_EVENTS.observe(1)
    return row


def _lock_order(params: Json) -> str:
    return str(params.get("stripe_customer_id") or "")


async def apply_many(
    db: Database, batch: list[Json], raws: list[str | None], lane: int
) -> list[asyncpg.Record]:
    """Apply events (each with its raw copy, or None) in one statement of the lane; their
    rows, in the order given. Any error: none is."""
    order = sorted(range(len(batch)), key=lambda i: _lock_order(batch[i]))
    async with db.autocommit() as tx:
        rows = await tx.conn.fetch(
            APPLY_EVENTS_IN_LANE,
            [batch[i] for i in order],
            LOCK_WAIT,
            LANE_CLASS,
            lane,
            [raws[i] for i in order],
        )
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
    raw: str | None
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

    At most `statements` at once (lane_depth), in the process's lane (see the module's
    doc). With none running, a delivery runs its own. With one running, the deliveries
    arriving wait, and the next statement is sent once as many wait as the running one
    holds (at least two) if a second may be sent, else when the running one ends."""

    def __init__(self, db: Database, statements: int) -> None:
        self._db = db
        self._statements = statements
        # random, not the pid: dynos' containers give their workers the same pids
        self._lane = secrets.randbits(31)
        self._waiting: list[_Waiting] = []
        self._running: list[int] = []  # the events of each statement sent
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def waiting(self) -> int:
        """Deliveries waiting for a statement (not those in one)."""
        return len(self._waiting)

    @property
    def lane(self) -> int:
        """The second integer of this process's lane lock (the first is LANE_CLASS)."""
        return self._lane

    @property
    def in_statements(self) -> int:
        """Deliveries in the statements sent (running or waiting in Postgres)."""
        return sum(self._running)

    async def apply(self, params: Json, raw: str | None = None) -> asyncpg.Record:
        """The event's row of billing_apply_stripe_event, once its statement committed."""
        if not self._running and not self._waiting:
            # none running: this delivery's is the next, run by its own request (no
            # hand-over to another task and back); what arrives meanwhile waits
            row = await self._lane_alone(params, raw)
            # given way: again on its own, outside the lane, where the error is its own
            # to raise; the lane already serves those waiting meanwhile
            return row if row is not None else await apply_one(self._db, params, raw)
        waiting = _Waiting(params, raw)
        self._waiting.append(waiting)
        self._send_ready()
        return await waiting.answer

    def _ready(self) -> bool:
        """Whether the next statement should be sent now, with what waits."""
        if not self._waiting or len(self._running) >= self._statements:
            return False
        if not self._running:
            return True
        return len(self._waiting) >= min(MAX_BATCH, max(2, *self._running))

    def _send_ready(self) -> None:
        while self._ready():
            batch = self._take()
            if batch:
                self._running.append(len(batch))
                # a statement serves several requests: its log lines name none of them
                contextvars.Context().run(self._spawn, self._statement(batch))

    def _take(self) -> list[_Waiting]:
        """What is waiting, up to a batch; a request that went away is left out."""
        batch = [w for w in self._waiting[:MAX_BATCH] if not w.answer.done()]
        del self._waiting[:MAX_BATCH]
        return batch

    async def _lane_alone(self, params: Json, raw: str | None) -> asyncpg.Record | None:
        """One event as a statement of the lane, run by its own request; None if it gave
        way (any error but the database's absence: a lock held for long, a value Postgres
        cannot store, a same-second conflict). Either way the lane is free once it ends."""
        self._running.append(1)
        try:
            (row,) = await apply_many(self._db, [params], [raw], self._lane)
        except DatabaseUnavailable:
            raise
        except Exception as error:
            _gave_way(1, error)
            return None
        finally:
            self._running.remove(1)
            self._send_ready()
        return row

    async def _statement(self, batch: list[_Waiting]) -> None:
        """One statement of the lane, for what was waiting."""
        try:
            await self._together(batch)
        except asyncio.CancelledError:  # shutting down: none of these is answered
            for waiting in [*batch, *self._waiting]:
                waiting.answer.cancel()
            self._waiting.clear()
            raise
        finally:
            self._running.remove(len(batch))
            self._send_ready()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _one_by_one(self, events: list[_Waiting]) -> None:
        for waiting in events:
            await self._alone(waiting)

    async def _alone(self, waiting: _Waiting) -> None:
        try:
            row = await apply_one(self._db, waiting.params, waiting.raw)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the request raises it, as if it had run it
            waiting.fail(error)
        else:
            waiting.settle(row)

    async def _together(self, batch: list[_Waiting]) -> None:
        try:
            rows = await apply_many(
                self._db,
                [waiting.params for waiting in batch],
                [waiting.raw for waiting in batch],
                self._lane,
            )
        except DatabaseUnavailable:
            for waiting in batch:
                waiting.fail(DatabaseUnavailable())
            return
        except Exception as error:
            # rolled back: each on its own, so the error stays with its event; one
            # customer's events in order, customers side by side, outside the lane: the
            # next batch does not wait for them (one may wait long for its customer)
            _gave_way(len(batch), error)
            by_customer: dict[str, list[_Waiting]] = {}
            for waiting in batch:
                by_customer.setdefault(_lock_order(waiting.params), []).append(waiting)
            for events in by_customer.values():
                self._spawn(self._one_by_one(events))
            return
        for waiting, row in zip(batch, rows, strict=True):
            waiting.settle(row)


def _gave_way(events: int, error: Exception) -> None:
    """A statement of the lane rolled back: its events go on their own, outside it."""
    WEBHOOK_BATCH_SPLITS.inc()
    log.info(
        "webhook_batch_split",
        events=events,
        error_type=type(error).__name__,
        sqlstate=getattr(error, "sqlstate", None),
    )
