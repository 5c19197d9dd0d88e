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
from typing import Any

from bench.lane import fresh_lane
from bench.procstat import cpu_seconds

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
    async with fresh_lane("queue-wal-", args.customers) as lane:
        conn = lane.conn
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        await conn.execute("CHECKPOINT")
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        start = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        cpu = cpu_seconds(pid)
        await lane.apply(lane.params(args.events), args.size)
        cpu = (cpu_seconds(pid) - cpu) / args.events * 1000
        end = await conn.fetchval("SELECT pg_current_wal_insert_lsn()")
        total = float(await conn.fetchval("SELECT $2::pg_lsn - $1::pg_lsn", start, end))
        names = {r["node"]: r["name"] for r in await conn.fetch(RELATIONS)}
        rows = [
            {**dict(r), "relation": names.get(r["node"], "-" if r["node"] is None else "?")}
            for r in await conn.fetch(RECORDS, start, end)
        ]
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
