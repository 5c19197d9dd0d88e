"""Before and after on the same host at the same time: two builds of Queue, interleaved.

    git worktree add /tmp/before <commit>
    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \\
      .venv/bin/python -m bench.ab --before-dir /tmp/before --workers 1 --levels 8,16,32,64

Starts `raxx-queue serve` twice, each on its own fresh database migrated from its own
checkout's migrations (so a change that adds one is measured too): once from the
checkout given by --before-dir (its `queue/` first on PYTHONPATH, its
`migrations/sqitch`), once as this environment would (this checkout, or what
PYTHONPATH names). Both take the same warm-up of
full-size deliveries (bench/fullsize.py: 10,000 customers, each one's subscription
created), then, round after round, each concurrency level gets fresh full-size
deliveries that both are sent in turn (the order alternates from one round to the
next) by bench/loadgen.py. Both stay up throughout, so the host's drift between the
two is seconds, not minutes; on a shared virtual machine that drift is larger than
most changes.

Prints each round as it goes, then per level the medians of req/s, the median and
range of the after/before ratios taken within each round, CPU ms per delivery of the
service and of its Postgres backends, p99 and events per statement.

`--route read` measures subscription reads instead: after the same warm-up, each round
gives each level a closed loop of `GET /api/v1/billing/subscriptions/{id}` over the
warmed-up customers for `--read-seconds`, both builds in turn (CPU per read).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import asyncpg
from tests.support import values
from tests.support.database import drop_database
from tests.support.process import service_pids

from bench import sidebyside as sbs
from bench.fullsize import FullSizeStream
from bench.run import Bench, Plan

BUILDS = ("before", "after")


async def measure(args: argparse.Namespace) -> dict[tuple[str, int], list[dict[str, Any]]]:
    scratch = Path(tempfile.mkdtemp(prefix="queue-ab-"))
    bench = Bench(Plan(reps=1), scratch)
    runner = sbs.SideBySide(bench, None, 1, tuple(args.levels))
    stream = FullSizeStream(args.customers)
    warmup = runner.bodies_file("warmup", stream.take(args.customers))
    # each build on its own schema: the after build's from this checkout's migrations,
    # the before build's from its checkout's (a change that adds a migration is measured)
    templates = {
        "after": await bench.template(),
        "before": await bench.template(args.before_dir.resolve() / "migrations" / "sqitch"),
    }
    urls = {build: await bench.clone(templates[build]) for build in BUILDS}
    server = await asyncpg.connect(bench.server)
    results: dict[tuple[str, int], list[dict[str, Any]]] = {
        (build, level): [] for build in BUILDS for level in args.levels
    }
    try:
        with ExitStack() as stack:
            targets = {}
            ours = os.environ.get("PYTHONPATH")
            for build in BUILDS:
                own: dict[str, str] = {}
                if build == "before":  # the service's environment is read from ours
                    before = args.before_dir.resolve()
                    os.environ["PYTHONPATH"] = f"{before / 'queue'}:{before}"
                    # its schema is its own checkout's: /ready compares it with that plan
                    own["QUEUE_MIGRATIONS_DIR"] = str(before / "migrations" / "sqitch")
                try:
                    service = stack.enter_context(
                        bench.service(urls[build], args.workers, build, **own)
                    )
                finally:
                    if ours is None:
                        os.environ.pop("PYTHONPATH", None)
                    else:
                        os.environ["PYTHONPATH"] = ours
                pids = service_pids(service.process.pid)
                spec = {"kind": "webhook", "url": service.url, "secret": values.WEBHOOK_SECRET}
                targets[build] = sbs.Target(f"queue-{build}", service.url, urls[build], pids, spec)
            for build in BUILDS:
                await runner.segment(server, targets[build], warmup, 16, wal=False)
            for round_ in range(args.rounds):
                for level in args.levels:
                    order = BUILDS if round_ % 2 == 0 else BUILDS[::-1]
                    if args.route == "webhook":
                        taken = stream.take(args.per_level)
                        bodies = runner.bodies_file(f"r{round_}c{level}", taken)
                    for build in order:
                        if args.route == "read":
                            measured = reads(bench, targets[build], args, level)
                        else:
                            measured = await runner.segment(server, targets[build], bodies, level)
                        results[(build, level)].append(measured)
                    print(
                        f"round {round_ + 1} c={level}: "
                        + ", ".join(
                            f"{b} {results[(b, level)][-1]['throughput']:.0f}/s" for b in BUILDS
                        ),
                        flush=True,
                    )
    finally:
        await server.close()
        for url in urls.values():
            await drop_database(bench.server, url)
        for template in templates.values():
            await drop_database(bench.server, template)
    return results


def reads(bench: Bench, target: sbs.Target, args: argparse.Namespace, level: int) -> dict[str, Any]:
    """A closed loop of subscription reads over the warmed-up customers."""
    bench.workers, bench.database = target.pids, target.database_url.rsplit("/", 1)[1]
    paths = [f"/api/v1/billing/subscriptions/cust_{k}" for k in range(args.customers)]
    spec = {
        "kind": "get",
        "url": target.url,
        "paths": paths,
        "token": values.RAPTOR_TOKEN,
        "concurrency": level,
        "duration": args.read_seconds,
    }
    return bench.segment(spec)


def summary(results: dict[tuple[str, int], list[dict[str, Any]]], levels: list[int]) -> str:
    def med(rows: list[dict[str, Any]], key: str) -> float:
        return statistics.median(float(r.get(key) or 0) for r in rows)

    lines = [
        "| concurrency | before req/s | after req/s | after/before, per round: median (range)"
        " | CPU ms/delivery before: service, Postgres | after | p99 ms before, after"
        " | events per statement before, after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for level in levels:
        before, after = results[("before", level)], results[("after", level)]
        ratios = [a["throughput"] / b["throughput"] for a, b in zip(after, before, strict=True)]
        lines.append(
            f"| {level} | {med(before, 'throughput'):.0f} | {med(after, 'throughput'):.0f}"
            f" | {statistics.median(ratios):.2f} ({min(ratios):.2f} to {max(ratios):.2f})"
            f" | {med(before, 'service_cpu_ms_per_request'):.2f},"
            f" {med(before, 'postgres_cpu_ms_per_request'):.2f}"
            f" | {med(after, 'service_cpu_ms_per_request'):.2f},"
            f" {med(after, 'postgres_cpu_ms_per_request'):.2f}"
            f" | {med(before, 'p99_ms'):.1f}, {med(after, 'p99_ms'):.1f}"
            f" | {med(before, 'events_per_statement'):.1f},"
            f" {med(after, 'events_per_statement'):.1f} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--before-dir", type=Path, required=True, help="a checkout to compare")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=[16])
    parser.add_argument("--per-level", type=int, default=1500, help="deliveries per segment")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--route", choices=("webhook", "read"), default="webhook")
    parser.add_argument("--read-seconds", type=float, default=5.0, help="of each read segment")
    args = parser.parse_args()
    if not (args.before_dir / "queue" / "raxx_queue").is_dir():
        raise SystemExit(f"{args.before_dir}: not a checkout of Queue")
    results = asyncio.run(measure(args))
    what = (
        f"{args.read_seconds:g} s of reads"
        if args.route == "read"
        else f"{args.per_level} deliveries"
    )
    print(f"\n{args.workers} worker(s), {args.rounds} rounds of {what} per level:")
    print(summary(results, args.levels))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
