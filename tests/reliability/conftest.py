"""One event stream for the fault tests, and the state of its in-order application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.event_stream import Event, event_stream, in_order_state


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
    expected = await in_order_state(pg_server, in_order)
    return Stream(in_order, deliveries, expected)


def assert_state(actual: dict[str, list[dict[str, Any]]], stream: Stream) -> None:
    for table, rows in stream.expected.items():
        assert actual[table] == rows, table
