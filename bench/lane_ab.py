"""Postgres's side of a change to the schema, before and after: two lanes, one given a SQL file.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
      .venv/bin/python -m bench.lane_ab --sql prototype.sql --rounds 6 --per-round 1000

Opens two lanes of bench/lane.py (each a fresh migrated database whose customers'
subscriptions exist already), runs the SQL file on the second one ("after"; for
example a `CREATE OR REPLACE FUNCTION` of a prototype), warms both up, then, round after
round, sends each the same count of fresh lone full-size deliveries (one event per
statement, as the webhook lane sends a delivery that arrives alone), the order
alternating from one round to the next. Prints each round's backend CPU and wall time per
event, their medians, the after/before ratio of wall time per round (median and range),
and how many events each database applied, so that a prototype that stops applying
events shows. A diagnosis, not a change: nothing here is kept in the repository's schema.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from contextlib import AsyncExitStack
from pathlib import Path
from statistics import median

from bench.lane import Lane, fresh_lane
from bench.procstat import cpu_seconds

WARM_UP = 300


async def lone_events(lane: Lane, pid: int, count: int) -> tuple[float, float]:
    """Backend CPU and wall ms per event for count fresh deliveries, one per statement."""
    events = lane.params(count)
    cpu, wall = cpu_seconds(pid), time.perf_counter()
    await lane.apply(events, 1)
    return (
        (cpu_seconds(pid) - cpu) / count * 1000,
        (time.perf_counter() - wall) / count * 1000,
    )


async def measure(args: argparse.Namespace) -> None:
    async with AsyncExitStack() as stack:
        before = await stack.enter_async_context(fresh_lane("queue-lane-ab-", args.customers))
        after = await stack.enter_async_context(fresh_lane("queue-lane-ab-", args.customers))
        await after.conn.execute(args.sql.read_text())
        # the lane's statement again, planned against what the file defined
        after.statement = await after.conn.prepare(after.statement.get_query())
        lanes = {"before": before, "after": after}
        pids = {
            name: await lane.conn.fetchval("SELECT pg_backend_pid()")
            for name, lane in lanes.items()
        }
        for lane in lanes.values():
            await lane.apply(lane.params(WARM_UP), 1)
        found: dict[str, list[tuple[float, float]]] = {name: [] for name in lanes}
        for round_ in range(args.rounds):
            order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
            for name in order:
                found[name].append(await lone_events(lanes[name], pids[name], args.per_round))
            print(
                f"round {round_ + 1}: "
                + " | ".join(
                    f"{name} CPU {found[name][-1][0]:.3f}, wall {found[name][-1][1]:.3f} ms"
                    for name in lanes
                ),
                flush=True,
            )
        for name, lane in lanes.items():
            applied = await lane.conn.fetchval(
                "SELECT count(*) FILTER (WHERE outcome = 'applied') FROM processed_stripe_events"
            )
            print(
                f"{name}: backend CPU {median(c for c, _ in found[name]):.3f} ms an event, "
                f"wall {median(w for _, w in found[name]):.3f} ms (medians); "
                f"{applied} events applied"
            )
        ratios = [a[1] / b[1] for a, b in zip(found["after"], found["before"], strict=True)]
        print(
            f"wall after/before per round: median {median(ratios):.3f} "
            f"(range {min(ratios):.3f} to {max(ratios):.3f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sql", type=Path, required=True, help="run on the 'after' database")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--per-round", type=int, default=1000, help="deliveries per segment")
    parser.add_argument("--customers", type=int, default=2000)
    asyncio.run(measure(parser.parse_args()))


if __name__ == "__main__":
    main()
