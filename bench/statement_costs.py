"""What a worker's statement costs Postgres: per statement, and per event in it.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
      .venv/bin/python -m bench.statement_costs                # batches of 1, 2, 4, 8, 16, 32
    .venv/bin/python -m bench.statement_costs --sizes 1,8 --rounds 5

A worker's statements run one at a time in its lane (webhooks/batching.py), so at the
concurrency levels where a worker's batches are small, the lane's pace is Postgres's
time per statement. This applies fresh full-size deliveries (bench/fullsize.py) on one
connection, exactly as the lane sends them (`APPLY_EVENTS_IN_LANE`, the lane lock
included), in statements of each size in turn, the order reversed every other round,
and reads the backend's CPU time from /proc. Then, for the floor under any statement on
this host, a one-row insert that commits (the same round trip, lock and WAL flush,
nothing of Queue's). Prints per size: backend CPU ms per event, wall ms per event
(the lane's pace), for each round and their median, the CPU of a whole statement, and the
deliveries a second one worker's lane can take at that pace.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from statistics import median

from bench.lane import fresh_lane
from bench.procstat import cpu_seconds
from raxx_queue.webhooks.batching import LANE_CLASS

FLOOR = "INSERT INTO bench_statement_floor (v) SELECT $1 FROM pg_advisory_xact_lock($2, $3)"


async def measure(args: argparse.Namespace) -> dict[int, list[tuple[float, float]]]:
    async with fresh_lane("queue-statements-", args.customers) as lane:
        conn = lane.conn
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        found: dict[int, list[tuple[float, float]]] = {size: [] for size in args.sizes}
        for round_ in range(args.rounds):
            for size in args.sizes if round_ % 2 == 0 else args.sizes[::-1]:
                events = lane.params(args.per_size)
                cpu, wall = cpu_seconds(pid), time.perf_counter()
                await lane.apply(events, size)
                found[size].append(
                    (
                        (cpu_seconds(pid) - cpu) / len(events) * 1000,
                        (time.perf_counter() - wall) / len(events) * 1000,
                    )
                )
        await conn.execute("CREATE TABLE bench_statement_floor (id bigserial PRIMARY KEY, v text)")
        floor = await conn.prepare(FLOOR)
        found[0] = []
        for _ in range(args.rounds):
            cpu, wall = cpu_seconds(pid), time.perf_counter()
            for _ in range(args.per_size):
                await floor.fetch("x", LANE_CLASS, 1)
            found[0].append(
                (
                    (cpu_seconds(pid) - cpu) / args.per_size * 1000,
                    (time.perf_counter() - wall) / args.per_size * 1000,
                )
            )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2, 4, 8, 16, 32]
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-size", type=int, default=960, help="deliveries per segment")
    parser.add_argument("--customers", type=int, default=2000)
    args = parser.parse_args()
    found = asyncio.run(measure(args))
    print(
        "| events per statement | backend CPU ms/event, per round | median | "
        "per statement | wall ms/event (the lane's pace), median | events/s at that pace |"
    )
    print("|---|---|---|---|---|---|")
    for size in [*args.sizes, 0]:
        cpu = median(c for c, _ in found[size])
        wall = median(w for _, w in found[size])
        name = str(size) if size else "a one-row insert that commits (the floor)"
        rounds = ", ".join(f"{c:.3f}" for c, _ in found[size])
        print(
            f"| {name} | {rounds} | {cpu:.3f} | {cpu * max(size, 1):.2f} | {wall:.3f} "
            f"| {1000 / wall:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
