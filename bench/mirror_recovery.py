"""Mirror delivery under a steady change stream, with Raptor down for a while.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python -m bench.mirror_recovery --seconds 50 --down 10 40 --rate 50

Commits mirror changes at a steady rate into a fresh, migrated database, runs the
dispatcher with its production settings against the test Raptor receiver, makes
Raptor answer 503 during the down window, and reports: commit-to-receipt latency while
Raptor is up (a change counts as delivered when Raptor accepts that version or a newer
one), how long the backlog took to drain after recovery, and any lost or out-of-order
versions.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time

import asyncpg
from tests.conftest import make_settings
from tests.mirror.steps import add_customer, change, received, versions
from tests.peers.raptor_receiver import RaptorReceiver
from tests.support import values
from tests.support.database import create_database, drop_database, migrate

from raxx_queue.db.pool import Database
from raxx_queue.mirror.dispatcher import run_mirror_dispatcher
from raxx_queue.wakeups import Wakeup

WARM_UP = 3.0  # seconds: the first pushes open the connection pool


def percentile(values_: list[float], fraction: float) -> float:
    ordered = sorted(values_)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def run(seconds: float, down: tuple[float, float], rate: float, customers: int) -> None:
    server = os.environ["TEST_DATABASE_URL"]
    url = await create_database(server, prefix="queue_bench")
    migrate(url)
    conn = await asyncpg.connect(url)
    ids = [f"cust_{n}" for n in range(customers)]
    commits: list[tuple[str, int, float]] = []
    try:
        for customer in ids:
            await add_customer(conn, customer)
        db = Database(url)
        await db.open()
        wakeup = Wakeup()
        with RaptorReceiver(token=values.MIRROR_TOKEN) as raptor:
            settings = make_settings(url, raptor_mirror_url=raptor.url, log_level="WARNING")
            async with run_mirror_dispatcher(settings, db, wakeup):
                start = time.monotonic()
                rng = random.Random(1)
                sent = 0
                is_down = False
                recovered_at = start + down[1]
                while (elapsed := time.monotonic() - start) < seconds:
                    if not is_down and down[0] <= elapsed < down[1]:
                        raptor.fail(503)
                        is_down = True
                    elif is_down and elapsed >= down[1]:
                        raptor.recover()
                        recovered_at = time.monotonic()
                        is_down = False
                    customer = rng.choice(ids)
                    version = await change(conn, customer)
                    commits.append((customer, version, time.monotonic()))
                    wakeup.nudge()
                    sent += 1
                    await asyncio.sleep(max(0.0, start + sent / rate - time.monotonic()))
                expected = await versions(conn)
                await raptor.await_for(
                    lambda pushes: all(
                        max(
                            (
                                r["version"]
                                for p in pushes
                                if p.accepted
                                for r in p.rows
                                if r["queue_customer_id"] == c
                            ),
                            default=0,
                        )
                        >= v
                        for c, v in expected.items()
                    ),
                    timeout=180,
                )
            pushes = raptor.pushes
            held = raptor.rows
        await db.close()
    finally:
        await conn.close()
        await drop_database(server, url)

    accepted: dict[str, list[tuple[float, int]]] = {}
    for push in pushes:
        if push.accepted:
            for row in push.rows:
                accepted.setdefault(row["queue_customer_id"], []).append(
                    (push.received_at, row["version"])
                )
    backlog_gone = recovered_at
    before: list[float] = []  # committed while Raptor was up, before the outage
    after: list[float] = []  # committed once the backlog had drained
    for customer, version, committed in commits:
        arrival = min(
            (t for t, v in accepted.get(customer, []) if v >= version and t >= committed),
            default=None,
        )
        assert arrival is not None, (customer, version)
        if committed < recovered_at:
            backlog_gone = max(backlog_gone, arrival)
        if WARM_UP <= committed - start < down[0] - 1:
            before.append(arrival - committed)
        elif committed > backlog_gone:
            after.append(arrival - committed)
    lost = [c for c, v in expected.items() if held.get(c, {}).get("version") != v]
    out_of_order = [c for c in ids if received(pushes, c) != sorted(received(pushes, c))]
    print(
        f"changes committed: {len(commits)} over {seconds:.0f} s ({rate:.0f}/s), "
        f"{customers} customers; Raptor down {down[0]:.0f}-{down[1]:.0f} s"
    )
    print(
        f"pushes: {len(pushes)} ({sum(p.accepted for p in pushes)} accepted, "
        f"{sum(p.status == 503 for p in pushes)} answered 503)"
    )
    for label, latencies in (("before the outage", before), ("after the drain", after)):
        if latencies:
            print(
                f"latency commit->receipt {label}: n={len(latencies)} "
                f"median {statistics.median(latencies) * 1000:.1f} ms, "
                f"p99 {percentile(latencies, 0.99) * 1000:.1f} ms, "
                f"max {max(latencies) * 1000:.1f} ms"
            )
    print(f"backlog of the outage drained {backlog_gone - recovered_at:.2f} s after recovery")
    print(f"lost versions: {len(lost)}; customers with out-of-order versions: {len(out_of_order)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=50)
    parser.add_argument("--down", type=float, nargs=2, default=(10, 40))
    parser.add_argument("--rate", type=float, default=50, help="changes per second")
    parser.add_argument("--customers", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run(args.seconds, tuple(args.down), args.rate, args.customers))


if __name__ == "__main__":
    main()
