"""Open-loop tails of two builds, interleaved: what a change does to p99 and the worst
wait, where latency counts from when each request was due.

    git worktree add /tmp/before <commit>
    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
      .venv/bin/python -m bench.tails --before-dir /tmp/before

Each round starts `raxx-queue serve` (`--workers` of them, one unless given; INFO logs)
from each build in turn, on a fresh database migrated from this checkout, and sends it:
a warm-up of mixed webhook deliveries (bench/stream.py); webhooks in an open loop; then
the paywall's read and `GET /health`, each first in a closed loop at concurrency 32 (so
the pool holds its connections, as in bench.run's ceilings), then in an open loop.
Prints each segment, then per segment the medians over the rounds of p50, p99 and the
worst latency, and the service's CPU per request. First, for each build, how long one
full garbage collection takes in a worker once started (the app from
`create_app_from_env`, as each of `raxx-queue serve`'s workers builds it, its lifespan
started): the event loop stops that long whenever the collector makes a full pass.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.support import values
from tests.support.database import drop_database
from tests.support.process import free_port, service_env, service_pids

from bench.run import Bench, Plan, database_name
from bench.stream import Block, CustomerBlocks

SEGMENTS = ("webhook", "read", "health")

# run in a process of each build: a started worker's app, then full collections timed
FULL_COLLECTION = """
import asyncio, gc, json, time
from raxx_queue.app import create_app_from_env

async def main():
    app = create_app_from_env()
    async with app.router.lifespan_context(app):
        passes = []
        for _ in range(5):
            started = time.perf_counter()
            gc.collect()
            passes.append((time.perf_counter() - started) * 1000)
        print(json.dumps({"tracked": len(gc.get_objects()), "frozen": gc.get_freeze_count(),
                          "full_collection_ms": passes}))

asyncio.run(main())
"""


def _pythonpath(checkout: Path) -> str:
    inherited = [os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []
    return os.pathsep.join([str(checkout / "queue"), *inherited])


def full_collections(url: str, builds: dict[str, Path]) -> None:
    """Print, per build, a started worker's objects and its full collections' times."""
    for name, checkout in builds.items():
        env = service_env(url, free_port(), PYTHONPATH=_pythonpath(checkout))
        out = subprocess.run(
            [sys.executable, "-c", FULL_COLLECTION], env=env, capture_output=True, check=True
        ).stdout
        print(f"{name}: a started worker, full collections: {out.decode().strip()}", flush=True)


def segments(
    bench: Bench, url: str, warmup: Block, measured: Block, args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    """One build's open-loop segments, on a service started at url's database."""
    hook = {"kind": "webhook", "url": url, "secret": values.WEBHOOK_SECRET}
    bench.segment({**hook, "bodies": bench.bodies_file(warmup), "concurrency": 16})
    spec = {**hook, "bodies": bench.bodies_file(measured), "concurrency": 64}
    got = {"webhook": bench.segment({**spec, "rate": args.webhook_rate})}
    ids = warmup.queue_customer_ids + measured.queue_customer_ids
    reads = {
        "kind": "get",
        "url": url,
        "paths": [f"/api/v1/billing/subscriptions/{k}" for k in ids],
        "token": values.RAPTOR_TOKEN,
    }
    health = {"kind": "get", "url": url, "paths": ["/health"]}
    for segment, base, rate in (
        ("read", reads, args.read_rate),
        ("health", health, args.health_rate),
    ):
        bench.segment({**base, "concurrency": 32, "duration": 2.0})
        got[segment] = bench.segment(
            {**base, "concurrency": 64, "duration": args.seconds, "rate": rate}
        )
    return got


async def measure(args: argparse.Namespace) -> dict[tuple[str, str], list[dict[str, Any]]]:
    bench = Bench(Plan(reps=1), Path(tempfile.mkdtemp(prefix="queue-tails-")))
    builds = {"before": args.before_dir, "after": args.after_dir}
    template = await bench.template()
    url = await bench.clone(template)
    try:
        full_collections(url, builds)
    finally:
        await drop_database(bench.server, url)
    population = CustomerBlocks(args.customers, 7)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    try:
        for round_ in range(1, args.rounds + 1):
            order = list(builds) if round_ % 2 else list(reversed(builds))
            for name in order:
                warmup, measured = population.take(300), population.take(args.webhooks)
                url = await bench.clone(template)
                bench.database = database_name(url)
                label = f"{name}-{round_}"
                try:
                    path = _pythonpath(builds[name])
                    with bench.service(url, args.workers, label, PYTHONPATH=path) as service:
                        bench.workers = service_pids(service.process.pid)
                        got = segments(bench, service.url, warmup, measured, args)
                finally:
                    await drop_database(bench.server, url)
                for segment, result in got.items():
                    results.setdefault((name, segment), []).append(result)
                    print(
                        f"round {round_} {name} {segment}: {result['throughput']:.0f}/s,"
                        f" p50 {result['p50_ms']:.1f} p99 {result['p99_ms']:.1f}"
                        f" max {result['max_ms']:.1f} ms,"
                        f" {result['service_cpu_ms_per_request']:.2f} CPU ms/request",
                        flush=True,
                    )
    finally:
        await drop_database(bench.server, template)
    return results


def report(results: dict[tuple[str, str], list[dict[str, Any]]], rounds: int, workers: int) -> None:
    if not results:
        return

    def med(name: str, segment: str, key: str) -> float:
        return statistics.median(r[key] for r in results[(name, segment)])

    print(f"\nmedians of {rounds} rounds, {workers} worker(s), open loop:")
    print(
        "| segment | p50 ms before, after | p99 ms before, after | worst ms before, after |"
        " CPU ms/request before, after |"
    )
    print("|---|---|---|---|---|")
    for segment in SEGMENTS:
        cells = [
            f"{med('before', segment, key):.1f}, {med('after', segment, key):.1f}"
            for key in ("p50_ms", "p99_ms", "max_ms")
        ]
        cpu = "service_cpu_ms_per_request"
        cells.append(f"{med('before', segment, cpu):.2f}, {med('after', segment, cpu):.2f}")
        print(f"| {segment} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before-dir", type=Path, required=True, help="a checkout to compare")
    parser.add_argument("--rounds", type=int, default=3, help="0: the full collections only")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--webhooks", type=int, default=450, help="customers per webhook segment")
    parser.add_argument("--webhook-rate", type=float, default=500.0)
    parser.add_argument("--read-rate", type=float, default=1000.0)
    parser.add_argument("--health-rate", type=float, default=1200.0)
    parser.add_argument("--seconds", type=float, default=10.0, help="of each read segment")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    args.before_dir = args.before_dir.resolve()
    args.after_dir = Path(__file__).resolve().parents[1]  # this checkout
    report(asyncio.run(measure(args)), args.rounds, args.workers)


if __name__ == "__main__":
    main()
