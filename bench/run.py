"""The benchmark: webhook ingest and subscription reads against the machine's own ceilings.

    .venv/bin/python -m bench.run                 # the full run (3 repetitions + soak, ~25 min)
    .venv/bin/python -m bench.run --quick         # a smoke run of the same steps (~2 min)

Needs a Postgres server: TEST_DATABASE_URL (else the embedded one). Every repetition
measures, each on a fresh database cloned from one migrated template and fed the same
blocks of customers:

- the storage ceiling (a): the service's database work per event with nothing around
  it: `billing_apply_stripe_event` called straight through asyncpg, with the service's
  parameters prepared before the clock, and the audit chain sealed beside it in rounds
  as the service's sealer does; and, for reference, the same calls without sealing;
- `raxx-queue serve` with 1 and with 2 workers: webhook ingest, then
  `GET /api/v1/billing/subscriptions/{id}`, then `GET /health` - the HTTP ceiling (b),
  which includes the service's database ping (`SELECT 1`);

each at concurrency 1, 8, 32 and 64 (closed loop) and at half of that repetition's
peak (open loop, latency counted from when each request was due). Load comes from a
separate process (bench/loadgen.py). A soak then sends 100,000+ events to one worker
at a steady rate for at least five minutes, sampling its memory. The tables print the
medians of the repetitions; ratios are taken within each repetition, then the median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from tests.support import values
from tests.support.database import MIGRATIONS, create_database, drop_database, server_url
from tests.support.process import (
    RunningService,
    free_port,
    service_env,
    status_of,
    wait_until,
    worker_pids,
)

from bench.procstat import (
    CpuMeter,
    load_average,
    peak_rss_mib,
    postgres_backends,
    rss_mib,
)
from bench.stream import Block, CustomerBlocks, block
from raxx_queue.db.migrate import deploy

LEVELS = (1, 8, 32, 64)
PRICE_TIERS = {values.PRICE_PRO: "pro", values.PRICE_PRO_PLUS: "pro_plus"}
WEBHOOK_OUTCOMES = {"applied", "duplicate", "stale", "ignored"}


@dataclass
class Plan:
    reps: int = 3
    customers: int = 10_000
    per_level: int = 300  # customers per measured webhook segment (~3,150 deliveries)
    warmup: int = 100
    read_seconds: float = 5.0
    soak_seconds: float = 300.0
    soak_customers: int = 10_000
    seed: int = 7


QUICK = Plan(
    reps=1, per_level=40, warmup=20, read_seconds=1.5, soak_seconds=20.0, soak_customers=600
)


@dataclass
class Row:
    """One measured segment."""

    target: str  # ceiling | webhook | read | health
    workers: int  # 0 for the storage ceiling
    level: str  # "1", "8", … or "half-peak"
    result: dict[str, Any]
    expected_duplicates: int = 0

    @property
    def errors(self) -> int:
        outcomes: dict[str, int] = self.result["outcomes"]
        if self.target in ("ceiling", "apply-only", "webhook"):
            wrong = sum(n for o, n in outcomes.items() if o not in WEBHOOK_OUTCOMES)
            return wrong + abs(outcomes.get("duplicate", 0) - self.expected_duplicates)
        return sum(n for o, n in outcomes.items() if o != "ok")


@dataclass
class Repetition:
    rows: list[Row] = field(default_factory=list)
    peak_rss: dict[int, list[float]] = field(default_factory=dict)  # workers -> MiB each
    load: list[str] = field(default_factory=list)


class Bench:
    def __init__(self, plan: Plan, scratch: Path) -> None:
        self.plan = plan
        self.scratch = scratch
        self.server = server_url()
        # what the CPU of a segment is counted on: the service's workers, and the
        # Postgres backends of the database under test
        self.workers: list[int] = []
        self.database = ""

    # ---- segments, each in its own load-generator process --------------------------

    def segment(self, spec: dict[str, Any], monitor: Any = None) -> dict[str, Any]:
        spec_path = self.scratch / "spec.json"
        spec_path.write_text(json.dumps(spec))
        service, postgres = CpuMeter(), CpuMeter()
        service.start(self.workers)
        postgres.start(postgres_backends(self.database))
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", str(spec_path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        while process.poll() is None:
            if monitor is not None:
                monitor()
            time.sleep(1.0)
        out, _ = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"load generator failed ({process.returncode})")
        result: dict[str, Any] = json.loads(out)
        # includes the generator's set-up before its clock starts: a slight overcount
        requests = max(1, result["requests"])
        result["service_cpu_ms_per_request"] = service.stop(self.workers) / requests * 1000
        if "postgres_cpu_ms_per_request" not in result:  # the ceiling measures its own
            backends = postgres_backends(self.database)
            result["postgres_cpu_ms_per_request"] = postgres.stop(backends) / requests * 1000
        return result

    def bodies_file(self, taken: Block) -> str:
        path = self.scratch / "bodies.ndjson"
        path.write_bytes(b"\n".join(taken.bodies) + b"\n")
        return str(path)

    def events(
        self, target: str, workers: int, base: dict[str, Any], blocks: list[Block]
    ) -> list[Row]:
        """Warm-up, the concurrency levels, then half of the best throughput."""
        rows = []
        warmup, *levels, half = blocks
        self.segment({**base, "bodies": self.bodies_file(warmup), "concurrency": 8})
        for concurrency, taken in zip(LEVELS, levels, strict=True):
            spec = {**base, "bodies": self.bodies_file(taken), "concurrency": concurrency}
            result = self.segment(spec)
            rows.append(Row(target, workers, str(concurrency), result, taken.duplicates))
        peak = max(r.result["throughput"] for r in rows)
        spec = {**base, "bodies": self.bodies_file(half), "concurrency": 64, "rate": peak / 2}
        rows.append(Row(target, workers, "half-peak", self.segment(spec), half.duplicates))
        return rows

    def gets(self, target: str, workers: int, base: dict[str, Any]) -> list[Row]:
        rows = []
        self.segment({**base, "concurrency": 8, "duration": 1.0})
        for concurrency in LEVELS:
            spec = {**base, "concurrency": concurrency, "duration": self.plan.read_seconds}
            rows.append(Row(target, workers, str(concurrency), self.segment(spec)))
        peak = max(r.result["throughput"] for r in rows)
        spec = {**base, "concurrency": 64, "duration": self.plan.read_seconds, "rate": peak / 2}
        rows.append(Row(target, workers, "half-peak", self.segment(spec)))
        return rows

    # ---- databases and services ------------------------------------------------------

    async def template(self, migrations: Path = MIGRATIONS) -> str:
        """A fresh database migrated from migrations (this checkout's by default)."""
        url = await create_database(self.server, prefix="queue_bench_template")
        deploy(url, migrations)
        return url

    async def clone(self, template: str) -> str:
        url = await create_database(self.server, prefix="queue_bench")
        name = database_name(url)
        conn = await asyncpg.connect(self.server)
        try:  # re-create it as a copy of the migrated template
            await conn.execute(f'DROP DATABASE "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{database_name(template)}"')
        finally:
            await conn.close()
        return url

    @contextmanager
    def service(
        self, database_url: str, workers: int, label: str, **extra: str
    ) -> Iterator[RunningService]:
        """`raxx-queue serve` as in production (INFO-level JSON logs), logs to a file;
        extra names settings of its own."""
        port = free_port()
        env = service_env(
            database_url,
            port,
            WEB_CONCURRENCY=str(workers),
            LOG_LEVEL="INFO",
            QUEUE_ENV="staging",
            METRICS_TOKEN=values.METRICS_TOKEN,
            **extra,
        )
        log = (self.scratch / f"service-{label}.log").open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "raxx_queue.cli", "serve"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        service = RunningService(process, f"http://127.0.0.1:{port}")
        try:

            def ready() -> bool:
                if process.poll() is not None:
                    raise RuntimeError(f"service exited with {process.returncode}")
                return status_of(f"{service.url}/ready") == 200

            wait_until(ready, what="service ready")
            if workers > 1:
                wait_until(lambda: len(worker_pids(process.pid)) == workers, what="workers")
            yield service
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()

    # ---- the run ------------------------------------------------------------------------

    async def repetition(self, template: str, blocks: list[Block], rep: int) -> Repetition:
        result = Repetition()
        result.load.append(load_average())
        url = await self.clone(template)
        self.database, self.workers = database_name(url), []
        try:
            print(f"  rep {rep}: storage ceiling", flush=True)
            base = {"kind": "sql", "dsn": url, "price_tiers": PRICE_TIERS}
            sealed = {**base, "audit_key": values.AUDIT_KEY}
            result.rows += self.events("ceiling", 0, sealed, blocks)
        finally:
            await drop_database(self.server, url)
        url = await self.clone(template)
        self.database = database_name(url)
        try:
            base = {"kind": "sql", "dsn": url, "price_tiers": PRICE_TIERS}
            result.rows += self.events("apply-only", 0, base, blocks)
        finally:
            await drop_database(self.server, url)
        for workers in (1, 2):
            url = await self.clone(template)
            self.database = database_name(url)
            try:
                print(f"  rep {rep}: service with {workers} worker(s)", flush=True)
                with self.service(url, workers, f"rep{rep}-w{workers}") as service:
                    pids = self.workers = worker_pids(service.process.pid)
                    base = {"kind": "webhook", "url": service.url, "secret": values.WEBHOOK_SECRET}
                    result.rows += self.events("webhook", workers, base, blocks)
                    ids = [k for b in blocks for k in b.queue_customer_ids]
                    paths = [f"/api/v1/billing/subscriptions/{k}" for k in ids]
                    base = {
                        "kind": "get",
                        "url": service.url,
                        "paths": paths,
                        "token": values.RAPTOR_TOKEN,
                    }
                    result.rows += self.gets("read", workers, base)
                    base = {"kind": "get", "url": service.url, "paths": ["/health"]}
                    result.rows += self.gets("health", workers, base)
                    result.peak_rss[workers] = [peak_rss_mib(pid) for pid in pids]
            finally:
                await drop_database(self.server, url)
            result.load.append(load_average())
        return result

    def soak_stream(self) -> tuple[str, int, int]:
        """All soak customers, in blocks of 500, to one file; (path, deliveries, duplicates)."""
        path = self.scratch / "soak.ndjson"
        deliveries = duplicates = 0
        with path.open("wb") as out:
            for first in range(0, self.plan.soak_customers, 500):
                count = min(500, self.plan.soak_customers - first)
                taken = block(first, count, seed=self.plan.seed)
                out.write(b"\n".join(taken.bodies) + b"\n")
                deliveries += len(taken.bodies)
                duplicates += taken.duplicates
        return str(path), deliveries, duplicates

    async def soak(self, template: str, peak: float) -> dict[str, Any]:
        """100,000+ events to one worker at a steady rate; its memory every few seconds."""
        bodies, deliveries, duplicates = self.soak_stream()
        # steady: at most 60% of the measured peak, and long enough to last the soak time
        rate = min(deliveries / self.plan.soak_seconds, 0.6 * peak)
        url = await self.clone(template)
        self.database = database_name(url)
        samples: list[tuple[float, float]] = []
        try:
            with self.service(url, 1, "soak") as service:
                (pid,) = self.workers = worker_pids(service.process.pid)
                started = time.monotonic()

                def sample() -> None:
                    samples.append((time.monotonic() - started, rss_mib(pid)))

                spec = {
                    "kind": "webhook",
                    "url": service.url,
                    "secret": values.WEBHOOK_SECRET,
                    "bodies": bodies,
                    "concurrency": 64,
                    "rate": rate,
                }
                result = self.segment(spec, monitor=sample)
                peak_rss = peak_rss_mib(pid)
        finally:
            await drop_database(self.server, url)
        row = Row("webhook", 1, "soak", result, duplicates)
        # growth: after the first fifth of the run (pool, caches, allocator warm) to the end
        warm = [mib for at, mib in samples if at >= samples[-1][0] / 5]
        return {
            "deliveries": deliveries,
            "rate": rate,
            "result": result,
            "errors": row.errors,
            "peak_rss_mib": peak_rss,
            "rss_after_warmup_mib": warm[0],
            "rss_end_mib": warm[-1],
            "rss_max_after_warmup_mib": max(warm),
            "samples": samples,
        }

    async def run(self) -> dict[str, Any]:
        plan = self.plan
        template = await self.template()
        conn = await asyncpg.connect(self.server)
        try:
            postgres = await conn.fetchval("SHOW server_version")
        finally:
            await conn.close()
        try:
            population = CustomerBlocks(plan.customers, plan.seed)
            blocks = [population.take(plan.warmup)] + [
                population.take(plan.per_level) for _ in range(len(LEVELS) + 1)
            ]
            reps = []
            for rep in range(1, plan.reps + 1):
                reps.append(await self.repetition(template, blocks, rep))
            soak = None
            if plan.soak_seconds > 0:
                print("  soak", flush=True)
                w1_peak = statistics.median(best(r, "webhook", 1) for r in reps)
                soak = await self.soak(template, w1_peak)
        finally:
            await drop_database(self.server, template)
        return {
            "plan": plan.__dict__,
            "machine": {**machine(), "postgres": postgres},
            "reps": reps,
            "soak": soak,
        }


# ---- reporting -------------------------------------------------------------------------


def database_name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def best(rep: Repetition, target: str, workers: int) -> float:
    return max(
        r.result["throughput"]
        for r in rep.rows
        if r.target == target and r.workers == workers and r.level != "half-peak"
    )


def machine() -> dict[str, str]:
    def run(*command: str) -> str:
        return subprocess.run(command, capture_output=True, text=True, check=False).stdout.strip()

    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "nproc": run("nproc"),
        "cpu": model,
        "memory": run("free", "-h").splitlines()[1],
        "python": platform.python_version(),
    }


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def results_table(reps: list[Repetition]) -> str:
    keys: list[tuple[str, int, str]] = []
    for row in reps[0].rows:
        keys.append((row.target, row.workers, row.level))
    names = {
        "ceiling": "(a) storage ceiling: SQL via asyncpg, audit sealed",
        "apply-only": "SQL via asyncpg, apply only, no sealing",
        "webhook": "POST /webhook",
        "read": "GET /subscriptions/{id}",
        "health": "(b) GET /health",
    }
    lines = [
        "| path | workers | concurrency | req/s | p50 ms | p95 ms | p99 ms | errors "
        "| peak RSS/worker MiB | CPU ms/req: service, Postgres, load generator |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for target, workers, level in keys:
        rows = [
            r
            for rep in reps
            for r in rep.rows
            if (r.target, r.workers, r.level) == (target, workers, level)
        ]

        def m(metric: str, rows: list[Row] = rows) -> float:
            return median([r.result[metric] for r in rows])

        rss = ""
        if workers and level == "half-peak" and target == "health":
            peaks = [max(rep.peak_rss[workers]) for rep in reps]
            rss = f"{median(peaks):.0f}"
        conc = "64, open loop at ½ peak" if level == "half-peak" else level
        lines.append(
            f"| {names[target]} | {workers or '-'} | {conc} | {m('throughput'):.0f} "
            f"| {m('p50_ms'):.1f} | {m('p95_ms'):.1f} | {m('p99_ms'):.1f} "
            f"| {sum(r.errors for r in rows)} | {rss} "
            f"| {m('service_cpu_ms_per_request'):.2f}, {m('postgres_cpu_ms_per_request'):.2f}, "
            f"{m('loadgen_cpu_ms_per_request'):.2f} |"
        )
    return "\n".join(lines)


def half_peak_p99(rep: Repetition, target: str, workers: int) -> float:
    return next(
        r.result["p99_ms"]
        for r in rep.rows
        if (r.target, r.workers, r.level) == (target, workers, "half-peak")
    )


def verdicts(reps: list[Repetition], soak: dict[str, Any] | None) -> list[str]:
    lines = []
    for workers in (1, 2):
        ingest = median([best(r, "webhook", workers) / best(r, "ceiling", 0) for r in reps])
        p99 = median([half_peak_p99(r, "webhook", workers) for r in reps])
        reads = median([best(r, "read", workers) / best(r, "health", workers) for r in reps])
        read_p99 = median([half_peak_p99(r, "read", workers) for r in reps])
        rss = max(max(r.peak_rss[workers]) for r in reps)
        apply_only = median([best(r, "webhook", workers) / best(r, "apply-only", 0) for r in reps])
        peak = median([best(r, "webhook", workers) for r in reps])
        lines += [
            f"{workers} worker(s): webhook best / storage ceiling = {ingest:.0%} (target >= 60%) "
            f"{mark(ingest >= 0.60)}",
            f"{workers} worker(s): webhook best / apply-only SQL (no sealing) = {apply_only:.0%}"
            " (for reference)",
            f"{workers} worker(s): webhook best = {peak:.0f}/s (SPEC section 10: >= 950/s) "
            f"{mark(peak >= 950)}",
            f"{workers} worker(s): webhook p99 at half peak = {p99:.1f} ms (target <= 25) "
            f"{mark(p99 <= 25)}",
            f"{workers} worker(s): read best / health = {reads:.0%} (target >= 50%) "
            f"{mark(reads >= 0.50)}",
            f"{workers} worker(s): read p99 at half peak = {read_p99:.1f} ms (target <= 10) "
            f"{mark(read_p99 <= 10)}",
            f"{workers} worker(s): peak RSS per worker = {rss:.0f} MiB (target <= 150) "
            f"{mark(rss <= 150)}",
        ]
    errors = sum(r.errors for rep in reps for r in rep.rows)
    lines.append(f"errors besides the intended duplicates: {errors} {mark(errors == 0)}")
    if soak is not None:
        growth = soak["rss_end_mib"] - soak["rss_after_warmup_mib"]
        lines += [
            f"soak: {soak['result']['requests']} deliveries to 1 worker at "
            f"{soak['rate']:.0f}/s over {soak['result']['elapsed_s']:.0f} s, "
            f"{soak['errors']} errors {mark(soak['errors'] == 0)}",
            f"soak: peak RSS {soak['peak_rss_mib']:.0f} MiB (target <= 150) "
            f"{mark(soak['peak_rss_mib'] <= 150)}; RSS {soak['rss_after_warmup_mib']:.0f} -> "
            f"{soak['rss_end_mib']:.0f} MiB after warm-up "
            f"(max {soak['rss_max_after_warmup_mib']:.0f}), "
            f"growth {growth:+.1f} MiB {mark(growth <= 5)}",
        ]
    return lines


def mark(ok: bool) -> str:
    return "MET" if ok else "MISSED"


def to_json(report: dict[str, Any]) -> str:
    from bench import sidebyside as sbs

    def encode(value: Any) -> Any:
        if isinstance(value, Repetition | Row | sbs.Repetition | sbs.Segment):
            return value.__dict__
        raise TypeError(type(value).__name__)

    return json.dumps(report, default=encode, indent=1)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run (1 rep, small)")
    parser.add_argument("--reps", type=int, help="repetitions (default 3)")
    parser.add_argument("--soak-seconds", type=float, help="0 skips the soak (default 300)")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument(
        "--scratch", type=Path, help="keep bodies and service logs here (default: a temp dir)"
    )
    parser.add_argument(
        "--only",
        choices=("ceilings", "side-by-side"),
        help="run only the ceilings benchmark or only the side-by-side run (default: both)",
    )
    parser.add_argument(
        "--peer-dir",
        type=Path,
        help="a built checkout of supabase/stripe-sync-engine for the side-by-side run "
        "(docs/performance.md says how to get and build it); without it the peer is skipped",
    )
    parser.add_argument(
        "--workload",
        choices=("fullsize", "mixed", "both"),
        default="both",
        help="the side-by-side run's workload(s) (default: both)",
    )
    args = parser.parse_args()
    plan = QUICK if args.quick else Plan()
    if args.reps is not None:
        plan.reps = args.reps
    if args.soak_seconds is not None:
        plan.soak_seconds = args.soak_seconds
    side = None
    with tempfile.TemporaryDirectory(prefix="queue-bench-") as temporary:
        scratch = args.scratch or Path(temporary)
        scratch.mkdir(parents=True, exist_ok=True)
        print(f"load before: {load_average()}", flush=True)
        report: dict[str, Any] = {}
        if args.only != "side-by-side":
            report = asyncio.run(Bench(plan, scratch).run())
            report["machine"]["load_after"] = load_average()
        if args.only != "ceilings":
            side = asyncio.run(side_by_side(args, plan, scratch))
    if report:
        print_ceilings(report)
    if side is not None:
        print_side_by_side(side)
        report["side_by_side"] = side
    if args.json:
        args.json.write_text(to_json(report))
    return 0


async def side_by_side(args: argparse.Namespace, plan: Plan, scratch: Path) -> dict[str, Any]:
    """Queue (1 and 2 workers) and the peer, the same deliveries, level by level."""
    from bench import sidebyside as sbs

    quick = args.quick
    levels = sbs.QUICK_LEVELS if quick else sbs.LEVELS
    peer_commit = None
    if args.peer_dir is None:
        print("side by side: no --peer-dir given, so the peer is skipped (Queue only)")
    else:
        peer_commit = sbs.peer_checkout(args.peer_dir)[1]
        print(f"side by side: peer {args.peer_dir} at {peer_commit}")
    bench = Bench(plan, scratch)
    workloads = []
    if args.workload in ("fullsize", "both"):
        customers = 1_000 if quick else 10_000
        workloads.append(sbs.fullsize_workload(customers, 400 if quick else 3_000, len(levels)))
    if args.workload in ("mixed", "both"):
        warm, per_level = (20, 40) if quick else (100, 300)
        workloads.append(sbs.mixed_workload(warm, per_level, len(levels)))
    runner = sbs.SideBySide(bench, args.peer_dir, plan.reps, levels)
    template = await bench.template()
    conn = await asyncpg.connect(bench.server)
    try:
        postgres = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    results: dict[str, Any] = {
        "peer_dir": str(args.peer_dir) if args.peer_dir else None,
        "peer_commit": peer_commit,
        "levels": levels,
        "machine": {**machine(), "postgres": postgres},
        "workloads": {},
    }
    try:
        for workload in workloads:
            print(sbs.workload_summary(workload), flush=True)
            reps = await runner.run(workload, template)
            results["workloads"][workload.name] = {
                "summary": sbs.workload_summary(workload),
                "reps": reps,
            }
    finally:
        await drop_database(bench.server, template)
    return results


def print_side_by_side(side: dict[str, Any]) -> None:
    from bench import sidebyside as sbs

    machine_ = side["machine"]
    print(
        f"\nside by side: {machine_['nproc']} cores, {machine_['cpu']}; Postgres "
        f"{machine_['postgres']}; peer commit {side['peer_commit']}"
    )
    for name, run in side["workloads"].items():
        reps: list[sbs.Repetition] = run["reps"]
        print(f"\n{run['summary']}")
        print("load average (1/5/15 min) at the start and end of each repetition:")
        for i, rep in enumerate(reps, 1):
            print(f"  rep {i} (order {', '.join(rep.order)}): " + " | ".join(rep.load))
        print(f"medians of {len(reps)} repetition(s):\n")
        print(sbs.table(reps, tuple(side["levels"])))
        print()
        for line in sbs.verdicts(reps, tuple(side["levels"]), name):
            print(line)


def print_ceilings(report: dict[str, Any]) -> None:
    reps: list[Repetition] = report["reps"]
    print()
    print(
        f"machine: {report['machine']['nproc']} cores, {report['machine']['cpu']}; "
        f"memory: {report['machine']['memory']}"
    )
    print("load average (1/5/15 min) per repetition:")
    for i, rep in enumerate(reps, 1):
        print(f"  rep {i}: " + " | ".join(rep.load))
    print(f"\nmedians of {len(reps)} repetition(s):\n")
    print(results_table(reps))
    print()
    for line in verdicts(reps, report["soak"]):
        print(line)


if __name__ == "__main__":
    sys.exit(main())
