"""Shuffled, duplicated, concurrent deliveries end in the state of an in-order application."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from tests.support.database import Conn
from tests.support.event_stream import event_stream, in_order_state, snapshot
from tests.support.webhooks import deliver


async def test_shuffled_concurrent_stream_equals_in_order(
    client: httpx.AsyncClient, db: Conn, pg_server: str
) -> None:
    in_order, deliveries = event_stream(customers=24, duplicates=0.1, seed=7)
    assert len(in_order) == 240

    semaphore = asyncio.Semaphore(16)

    async def send(event: dict[str, object]) -> str:
        async with semaphore:
            response = await deliver(client, event)
        assert response.status_code == 200, response.text
        outcome: str = response.json()["outcome"]
        return outcome

    outcomes = Counter(await asyncio.gather(*(send(e) for e in deliveries)))
    assert outcomes["duplicate"] >= len(deliveries) - len(in_order)
    shuffled_state = await snapshot(db)

    expected = await in_order_state(pg_server, in_order)

    assert len(expected["subscriptions"]) == 24
    for table in expected:
        assert shuffled_state[table] == expected[table], table
    entitled = sum(1 for row in expected["mirror"] if row["entitled"])
    assert entitled == 6  # only the customers that recovered and upgraded keep access
