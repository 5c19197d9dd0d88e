"""One event stream for the fault tests, and the state of its in-order application."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.support.event_stream import Event, event_stream, in_order_state
from tests.support.pgbouncer import SERVICE_ENV, PgBouncer


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


@dataclass(frozen=True)
class Route:
    """How service processes reach the test database: directly, or through PgBouncer in
    transaction mode (Heroku's connection pooling); assertions always read directly."""

    name: str
    url: str
    env: dict[str, str]


@pytest.fixture(params=["direct", "pgbouncer"])
def route(request: pytest.FixtureRequest, clean_db: str) -> Route:
    if request.param == "direct":
        return Route("direct", clean_db, {})
    bouncer: PgBouncer = request.getfixturevalue("pgbouncer")
    return Route("pgbouncer", bouncer.url_for(clean_db), dict(SERVICE_ENV))


def assert_state(actual: dict[str, list[dict[str, Any]]], stream: Stream) -> None:
    for table, rows in stream.expected.items():
        assert actual[table] == rows, table
