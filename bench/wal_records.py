"""What an event writes: WAL per full-size event, by relation and record type.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
      .venv/bin/python -m bench.wal_records                  # 4,000 events, 8 per statement
    .venv/bin/python -m bench.wal_records --events 8000 --size 16 --top 40

Applies fresh full-size deliveries (bench/fullsize.py) on one connection as a worker's
lane sends them (`APPLY_EVENTS_IN_LANE`), after a first round that creates every
customer's subscription and a checkpoint, then reads the WAL they wrote back with
Postgres's pg_walinspect (a contrib extension shipped with the server; created in the
scratch database). Prints WAL bytes per event in all, then per relation (a TOAST
table or index under its owner's name) and record type: records per event, bytes
per event, and the part of them that is full-page images. Also the backend's CPU ms
per event over the same statements. Every row, index entry and row lock an event
costs shows up here.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from tests.support.database import drop_database

from bench.costs import TIERS
from bench.fullsize import FullSizeStream
from bench.procstat import cpu_seconds
from bench.run import QUICK, Bench
from raxx_queue.webhooks.batching import APPLY_EVENTS_IN_LANE, LANE_CLASS, LOCK_WAIT
from raxx_queue.webhooks.pipeline import EventContext, apply_params

# the relation of a record's first block reference: "blkref #0: rel 1663/5/16522 ..."
RECORDS = r"""
SELECT resource_manager, record_type, count(*) AS records, sum(record_length) AS bytes,
       sum(fpi_length) AS fpi, substring(block_ref FROM 'rel \d+/\d+/(\d+)')::oid AS node
  FROM pg_get_wal_records_info($1, $2)
 GROUP BY 1, 2, 6
 ORDER BY 4 DESC
"""
# a TOAST table, or its index, under its owner's name
RELATIONS = """
SELECT c.relfilenode AS node,
       coalesce(o.relname || ' (TOAST)', t.relname || ' (TOAST index)', c.relname) AS name
  FROM pg_class AS c
  LEFT JOIN pg_class AS o ON o.reltoastrelid = c.oid
  LEFT JOIN pg_index AS i ON i.indexrelid = c.oid
  LEFT JOIN pg_class AS t ON t.reltoastrelid = i.indrelid
 WHERE c.relfilenode <> 0
"""


async def measure(args: argparse.Namespace) -> tuple[float, float, list[dict[str, Any]]]:
    bench = Bench(QUICK, Path(tempfile.mkdtemp(prefix="queue-wal-")))
    template = await bench.template()
    url = await bench.clone(template)
    stream = FullSizeStream(args.customers)
    context = EventContext(price_tiers=TIERS, grace_days=7)
    conn = await asyncpg.connect(url)
    try:
        await conn.set_type_codec(
            "jsonb", encoder=str, decoder=str, schema="pg_catalog", format="text"
        )
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        statement = await conn.prepare(APPLY_EVENTS_IN_LANE)

        async def apply(count: int, size: int) -> None:
            events = [apply_params(orjson.loads(body), context) for body in stream.take(count)]
            for i in range(0, count, size):
                batch = orjson.dumps(events[i : i + size]).decode()
                await statement.fetch(batch, LOCK_WAIT, LANE_CLASS, 1)

        await apply(args.customers, 16)  # every customer's subscription, unmeasured
        await conn.execute("CHECKPOINT")
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        start = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        cpu = cpu_seconds(pid)
        await apply(args.events, args.size)
        cpu = (cpu_seconds(pid) - cpu) / args.events * 1000
        end = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        total = float(await conn.fetchval("SELECT $2::pg_lsn - $1::pg_lsn", start, end))
        names = {r["node"]: r["name"] for r in await conn.fetch(RELATIONS)}
        rows = [
            {**dict(r), "relation": names.get(r["node"], "-" if r["node"] is None else "?")}
            for r in await conn.fetch(RECORDS, start, end)
        ]
    finally:
        await conn.close()
        await drop_database(bench.server, url)
        await drop_database(bench.server, template)
    return total / args.events, cpu, rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=4000)
    parser.add_argument("--size", type=int, default=8, help="events per statement")
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--top", type=int, default=25, help="rows of the table to print")
    args = parser.parse_args()
    per_event, cpu, rows = asyncio.run(measure(args))
    print(
        f"{args.events} full-size events, {args.size} per statement: "
        f"WAL {per_event:,.0f} bytes per event; backend CPU {cpu:.3f} ms per event"
    )
    print("| relation | record | records/event | bytes/event | of which full pages |")
    print("|---|---|---|---|---|")
    for r in rows[: args.top]:
        print(
            f"| {r['relation']} | {r['resource_manager']} {r['record_type']} "
            f"| {r['records'] / args.events:.2f} | {r['bytes'] / args.events:,.1f} "
            f"| {r['fpi'] / args.events:,.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
