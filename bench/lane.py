"""One worker's lane on one connection: fresh full-size deliveries applied as the lane
sends them (`APPLY_EVENTS_IN_LANE`, the lane lock included), on a fresh migrated
database. bench.statement_costs and bench.wal_records measure Postgres's side of it."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from tests.support.database import drop_database

from bench.costs import TIERS
from bench.fullsize import FullSizeStream
from bench.run import QUICK, Bench
from raxx_queue.webhooks.batching import APPLY_EVENTS_IN_LANE, LANE_CLASS, LOCK_WAIT
from raxx_queue.webhooks.intake import delivery_params
from raxx_queue.webhooks.pipeline import EventContext


@dataclass
class Lane:
    conn: asyncpg.Connection[Any]
    statement: asyncpg.prepared_stmt.PreparedStatement[Any]
    stream: FullSizeStream
    context: EventContext

    def params(self, count: int) -> list[tuple[dict[str, Any], str | None]]:
        """The next count deliveries, as the worker passes them to Postgres: each event's
        parameter and its raw copy (intake.delivery_params)."""
        return [delivery_params(body, self.context) for body in self.stream.take(count)]

    async def apply(self, events: list[tuple[dict[str, Any], str | None]], size: int) -> None:
        """events in statements of size events each, one after the other."""
        for i in range(0, len(events), size):
            chunk = events[i : i + size]
            batch = orjson.dumps([params for params, _ in chunk]).decode()
            raws = [raw for _, raw in chunk]
            await self.statement.fetch(batch, LOCK_WAIT, LANE_CLASS, 1, raws)


@asynccontextmanager
async def fresh_lane(prefix: str, customers: int) -> AsyncIterator[Lane]:
    """A lane on a fresh database where every customer's subscription exists already
    (that first round goes before the caller measures anything); dropped afterwards."""
    scratch = tempfile.TemporaryDirectory(prefix=prefix)
    bench = Bench(QUICK, Path(scratch.name))
    template = await bench.template()
    url = await bench.clone(template)
    conn = await asyncpg.connect(url)
    try:
        await conn.set_type_codec(
            "jsonb", encoder=str, decoder=str, schema="pg_catalog", format="text"
        )
        lane = Lane(
            conn,
            await conn.prepare(APPLY_EVENTS_IN_LANE),
            FullSizeStream(customers),
            EventContext(price_tiers=TIERS, grace_days=7),
        )
        await lane.apply(lane.params(customers), 16)
        yield lane
    finally:
        await conn.close()
        await drop_database(bench.server, url)
        await drop_database(bench.server, template)
        scratch.cleanup()
