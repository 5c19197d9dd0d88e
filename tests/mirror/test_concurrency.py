"""Several dispatchers (dynos) on one database never push one row concurrently."""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from typing import Any

import pytest

from raxx_queue.db.pool import Database
from raxx_queue.mirror.dispatcher import DispatcherConfig, run_mirror_dispatcher
from raxx_queue.wakeups import Wakeup
from tests.conftest import make_settings
from tests.mirror.steps import (
    FAST,
    add_customer,
    assert_in_order,
    change,
    holds_versions,
    versions,
)
from tests.peers.raptor_receiver import Push, RaptorReceiver
from tests.support import values
from tests.support.database import Conn


class SlowRaptor(RaptorReceiver):
    """A receiver that takes a few milliseconds per push and notes when it decided."""

    def __init__(self, latency: float) -> None:
        super().__init__(token=values.MIRROR_TOKEN)
        self._latency = latency
        self._lock = threading.Lock()
        self.decided_at: dict[int, float] = {}

    def _answer(self, push: Push) -> tuple[int, dict[str, Any]]:
        time.sleep(self._latency)  # Raptor's own processing time, not a test wait
        answer = super()._answer(push)
        with self._lock:
            self.decided_at[id(push)] = time.monotonic()
        return answer


@pytest.fixture
def slow_raptor() -> Iterator[SlowRaptor]:
    with SlowRaptor(latency=0.003) as running:
        yield running


@asynccontextmanager
async def dispatchers(
    database_url: str, receiver: RaptorReceiver, count: int, config: DispatcherConfig
) -> AsyncIterator[list[Wakeup]]:
    """`count` dispatchers, each with its own pool and client, as separate dynos have."""
    settings = make_settings(database_url, raptor_mirror_url=receiver.url)
    wakeups = [Wakeup() for _ in range(count)]
    async with AsyncExitStack() as stack:
        for wakeup in wakeups:
            db = Database(database_url, max_size=3)
            await db.open()
            stack.push_async_callback(db.close)
            await stack.enter_async_context(run_mirror_dispatcher(settings, db, wakeup, config))
        yield wakeups


async def test_two_dispatchers_split_the_rows_and_push_each_once(
    db: Conn, clean_db: str, receiver: RaptorReceiver
) -> None:
    config = replace(FAST, request_timeout=3.0, lease_seconds=10.0)
    rows = 2 * config.batch_size
    for number in range(rows):
        await add_customer(db, f"cust_{number}")
    receiver.hang()
    async with dispatchers(clean_db, receiver, 2, config):
        # one batch each, all held at once: only possible if the claims were disjoint
        held = await receiver.await_for(lambda pushes: len(pushes) == rows)
        assert len({push.rows[0]["queue_customer_id"] for push in held}) == rows
        receiver.recover()
        await receiver.await_for(holds_versions(dict.fromkeys(held_ids(held), 1)))
    assert len(receiver.pushes) == rows
    pending = await db.fetchval(
        "SELECT count(*) FROM billing_subscription_mirror"
        " WHERE version > pushed_version OR push_lease_until IS NOT NULL"
    )
    assert pending == 0


def held_ids(pushes: list[Push]) -> list[str]:
    return [push.rows[0]["queue_customer_id"] for push in pushes]


async def test_dispatchers_under_churn_never_overlap_or_reorder_a_row(
    db: Conn, clean_db: str, slow_raptor: SlowRaptor
) -> None:
    customers = [f"cust_{number}" for number in range(12)]
    for customer in customers:
        await add_customer(db, customer)
    rng = random.Random(7)
    config = replace(FAST, batch_size=4)
    async with dispatchers(clean_db, slow_raptor, 3, config) as wakeups:
        for _ in range(150):
            await change(db, rng.choice(customers))
            rng.choice(wakeups).nudge()  # the committing process wakes its own dispatcher
        expected = await versions(db)
        await slow_raptor.await_for(holds_versions(expected), timeout=20)

    pushes = slow_raptor.pushes
    assert {key: row["version"] for key, row in slow_raptor.rows.items()} == expected
    assert all(push.accepted for push in pushes)
    assert_in_order(pushes)
    for customer in customers:
        mine = sorted(
            (p for p in pushes if p.rows[0]["queue_customer_id"] == customer),
            key=lambda p: p.received_at,
        )
        pushed = [p.rows[0]["version"] for p in mine]
        assert len(pushed) == len(set(pushed)), (customer, pushed)  # no version twice
        for earlier, later in itertools.pairwise(mine):
            assert slow_raptor.decided_at[id(earlier)] <= later.received_at, customer
