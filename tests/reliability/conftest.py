"""One event stream for the fault tests, and the state of its in-order application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from tests.conftest import make_settings, running_app
from tests.support.database import create_database, drop_database, migrate
from tests.support.event_stream import Event, event_stream, snapshot
from tests.support.webhooks import deliver


@dataclass(frozen=True)
class Stream:
    in_order: list[Event]
    # shuffled, with a fifth delivered twice
    deliveries: list[Event]
    # snapshot() of a database that applied in_order one by one
    expected: dict[str, list[dict[str, Any]]]


@pytest.fixture(scope="session")
async def stream(pg_server: str) -> Stream:
    in_order, deliveries = event_stream(customers=16, duplicates=0.2, seed=23)
    reference = await create_database(pg_server, prefix="queue_reference")
    try:
        migrate(reference)
        async with running_app(make_settings(reference, log_level="WARNING")) as app:
            for event in in_order:
                response = await deliver(app, event)
                assert response.json()["outcome"] in {"applied", "ignored"}
        conn = await asyncpg.connect(reference)
        try:
            expected = await snapshot(conn)
        finally:
            await conn.close()
    finally:
        await drop_database(pg_server, reference)
    return Stream(in_order, deliveries, expected)


def assert_state(actual: dict[str, list[dict[str, Any]]], stream: Stream) -> None:
    for table, rows in stream.expected.items():
        assert actual[table] == rows, table
