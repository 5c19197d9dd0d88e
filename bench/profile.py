"""Where a webhook's time goes: a sampling profile of one worker under steady load.

    .venv/bin/python -m bench.profile                    # 20 s at concurrency 32
    .venv/bin/python -m bench.profile --concurrency 8 --customers 800
    .venv/bin/python -m bench.profile --route read      # GET /subscriptions/{id}
    .venv/bin/python -m bench.profile --workload fullsize           # full-size events
    .venv/bin/python -m bench.profile --workload fullsize --steps   # the webhook's own steps
    .venv/bin/python -m bench.profile --workload fullsize --postgres  # Postgres's side

Starts `raxx-queue serve` (one worker, production logging) on a fresh migrated
database, drives signed webhooks (or, after them, subscription reads) at it from
bench/loadgen.py, and samples the worker with py-spy (a dev dependency; it reads the
process from outside, so the service runs unmodified). Prints the share of busy
samples (idle time left out) by layer and by function, each sample charged to the
code it was in; --keep saves the folded stacks for flame graphs. (Coroutine stacks
restart at each resumption, so time "below" a function means little here; its own
time is what counts.)

`--workload fullsize` profiles the full-size deliveries of bench/fullsize.py (its first
round, each customer's subscription created, goes before the sampling); `--steps` and
`--postgres` time the webhook's own steps in process and Postgres's side of each event
instead (bench/costs.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from tests.support import values
from tests.support.database import drop_database
from tests.support.process import worker_pids

from bench import costs
from bench.fullsize import FullSizeStream
from bench.run import QUICK, Bench
from bench.stream import CustomerBlocks

IDLE = ("select (selectors.py", "_run_once (asyncio", "run_forever", "epoll", "poll (")
# Where a sample's own code lives, by the file of its innermost frame. uvloop's loop
# is C: py-spy charges its work (socket reads, writes, callbacks) to Runner.run.
LAYERS = (
    ("HTTP server and event loop (uvicorn, uvloop, asyncio)", ("uvicorn/", "asyncio/")),
    ("framework (FastAPI, Starlette, pydantic)", ("fastapi/", "starlette/", "pydantic", "anyio/")),
    ("database driver (asyncpg, pool)", ("asyncpg/", "raxx_queue/db/")),
    (
        "logging (structlog, logging, redaction)",
        ("structlog/", "logging/", "raxx_queue/redaction", "raxx_queue/logs"),
    ),
    ("metrics (prometheus_client)", ("prometheus_client/",)),
    (
        "Queue's middleware, dependencies, errors",
        ("raxx_queue/api/middleware", "raxx_queue/api/deps", "raxx_queue/errors"),
    ),
    (
        "the webhook's own work (verify, parse, normalise, encode)",
        (
            "raxx_queue/api/webhook",
            "raxx_queue/webhooks/",
            "stripe/",
            "hmac.py",
            "raxx_queue/jsonio",
            "json/",
        ),
    ),
    ("the read's own work", ("raxx_queue/api/subscriptions", "raxx_queue/billing/")),
    (
        "background workers (sealer, dispatcher)",
        ("raxx_queue/audit/", "raxx_queue/mirror/", "raxx_queue/wakeups"),
    ),
)


def layer_of(frame: str) -> str:
    if frame.startswith("Runner.run ("):
        return LAYERS[0][0]
    where = frame.rpartition("(")[2]
    for name, prefixes in LAYERS:
        if where.startswith(prefixes):
            return name
    return "other (stdlib, contextlib, ...)"


def fold(path: Path) -> tuple[Counter[str], Counter[str], int]:
    """Busy samples per layer and per innermost frame, from py-spy's raw (folded) output."""
    layers: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        innermost = stack.split(";")[-1]
        if any(marker in innermost for marker in IDLE):
            continue  # the event loop waiting: not work
        count = int(count_text)
        total += count
        exclusive[innermost] += count
        layers[layer_of(innermost)] += count
    return layers, exclusive, total


def report(path: Path, top: int) -> str:
    layers, exclusive, total = fold(path)
    lines = [f"{total} busy samples", "", "by layer (the code each sample was in):"]
    lines += [f"  {n / total:6.1%}  {layer}" for layer, n in layers.most_common()]
    lines += ["", "by function (its own code):"]
    lines += [f"  {n / total:6.1%}  {frame}" for frame, n in exclusive.most_common(top)]
    return "\n".join(lines)


def start_py_spy(args: argparse.Namespace, pid: int, folded: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling the worker from outside for --seconds, folded stacks to a file."""
    command = [args.py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250"]
    command += ["--duration", str(args.seconds), "--output", str(folded)]
    # --native unwinds C and Cython frames too (uvloop, asyncpg's protocol, orjson), which
    # needs the process stopped at each sample; without it py-spy does not stop it
    command += ["--native"] if args.native else ["--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def deliveries(args: argparse.Namespace) -> tuple[list[bytes], list[bytes], list[str]]:
    """(warm-up, measured deliveries, queue_customer_ids) of the chosen workload."""
    if args.workload == "fullsize":
        stream = FullSizeStream(args.customers)
        warm = stream.take(args.customers)
        measured = stream.take(args.customers * args.rounds)
        return warm, measured, [c.queue_customer_id for c in stream.customers]
    taken = CustomerBlocks(args.customers, seed=11).take(args.customers)
    return [], taken.bodies, taken.queue_customer_ids


async def profile(args: argparse.Namespace, scratch: Path) -> Path:
    bench = Bench(QUICK, scratch)
    template = await bench.template()
    url = await bench.clone(template)
    bench.database = url.rsplit("/", 1)[1]
    warm, measured, queue_ids = deliveries(args)
    folded = scratch / "profile.folded"
    try:
        with bench.service(url, 1, "profile") as service:
            (pid,) = bench.workers = worker_pids(service.process.pid)
            webhooks = {
                "kind": "webhook",
                "url": service.url,
                "secret": values.WEBHOOK_SECRET,
                "bodies": write_bodies(scratch / "measured.ndjson", measured),
                "concurrency": args.concurrency,
            }
            reads = {
                "kind": "get",
                "url": service.url,
                "paths": [f"/api/v1/billing/subscriptions/{k}" for k in queue_ids],
                "token": values.RAPTOR_TOKEN,
                "concurrency": args.concurrency,
                "duration": args.seconds + 2,
            }
            if warm:  # unsampled
                bodies = write_bodies(scratch / "warm.ndjson", warm)
                bench.segment({**webhooks, "bodies": bodies, "concurrency": 16})
            if args.route == "read":  # the customers first, unsampled
                bench.segment(webhooks)
            spy = start_py_spy(args, pid, folded)
            result = bench.segment(webhooks if args.route == "webhook" else reads)
            spy.wait()
            keys = ("requests", "throughput", "p50_ms", "p99_ms", "service_cpu_ms_per_request")
            summary = {k: round(result[k], 3) for k in keys}
            print(json.dumps({**summary, "outcomes": result["outcomes"]}))
    finally:
        await drop_database(bench.server, url)
        await drop_database(bench.server, template)
    return folded


def write_bodies(path: Path, bodies: list[bytes]) -> str:
    path.write_bytes(b"\n".join(bodies) + b"\n")
    return str(path)


def print_steps(args: argparse.Namespace) -> None:
    _, measured, _ = deliveries(args)
    bodies = measured[: args.step_events]
    sizes = sum(len(b) for b in bodies) / len(bodies)
    print(f"the webhook's own steps, {len(bodies)} deliveries of {sizes:.0f} bytes on average:")
    total = 0.0
    for name, micros in costs.steps(bodies):
        total += micros
        print(f"  {micros:8.1f} µs  {name}")
    print(f"  {total:8.1f} µs  in all")


async def print_postgres(args: argparse.Namespace, scratch: Path) -> None:
    bench = Bench(QUICK, scratch)
    template = await bench.template()
    url = await bench.clone(template)
    warm, measured, _ = deliveries(args)
    try:
        found = await costs.postgres(url, warm + measured, len(warm))
    finally:
        await drop_database(bench.server, url)
        await drop_database(bench.server, template)
    print(
        f"{found['events']} events straight through billing_apply_stripe_event, one "
        f"connection: {found['outcomes']}"
    )
    print(
        f"  backend CPU {found['backend_cpu_ms_per_event']:.3f} ms/event, wall "
        f"{found['wall_ms_per_event']:.3f} ms/event, WAL {found['wal_bytes_per_event']:.0f} "
        "bytes/event (server-wide)"
    )
    own = found["wal_of_this_database"]
    print(f"  WAL of this database only (pg_walinspect): {own['bytes_per_event']:.0f} bytes/event")
    for r in own["by_record"][:12]:
        print(
            f"    {r['bytes_per_event']:7.0f} bytes ({r['fpi_per_event']:.0f} of page images), "
            f"{r['n'] / found['events']:.2f} records  {r['record']}"
        )
    sealing = found["sealing"]
    print(
        f"  then sealing the audit rows: Postgres {sealing['postgres_cpu_ms']:.3f} ms/event, "
        f"Python {sealing['python_cpu_ms']:.3f} ms/event, "
        f"WAL {sealing['wal_bytes']:.0f} bytes/event"
    )
    print("  PL/pgSQL functions per event (own time, then with what they call):")
    for f in found["functions_ms_per_event"]:
        print(
            f"    {f['self_ms']:.3f} ms own, {f['total_ms']:.3f} ms in all, "
            f"{f['calls_per_event']:.2f} calls  {f['function']}"
        )
    print("  rows written per event (inserted, updated, of which HOT) and indexes per table:")
    for table, w in found["rows_per_event"].items():
        print(
            f"    {w['n_tup_ins']:.2f} ins, {w['n_tup_upd']:.2f} upd ({w['n_tup_hot_upd']:.2f} "
            f"HOT), {found['indexes'].get(table, 0)} indexes  {table}"
        )
    payload = found["payload"]
    print(
        f"  stored payload: {payload['text_bytes']:.0f} bytes as text, "
        f"{payload['stored_bytes']:.0f} as stored (jsonb, compressed); "
        f"text -> jsonb parse {payload['jsonb_parse_ms']:.3f} ms/event"
    )
    if args.keep:
        args.keep.write_text(json.dumps(found, indent=1))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--route", choices=("webhook", "read"), default="webhook")
    parser.add_argument("--workload", choices=("mixed", "fullsize"), default="mixed")
    parser.add_argument(
        "--customers", type=int, default=1500, help="mixed: about 10 events each; fullsize: 1"
    )
    parser.add_argument("--rounds", type=int, default=6, help="fullsize: deliveries per customer")
    parser.add_argument("--steps", action="store_true", help="time the webhook's own steps")
    parser.add_argument("--step-events", type=int, default=3000, help="deliveries for --steps")
    parser.add_argument("--postgres", action="store_true", help="Postgres's side of each event")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=20, help="how long py-spy samples")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--native", action="store_true", help="sample C/Cython frames too (slows the worker)"
    )
    parser.add_argument(
        "--keep", type=Path, help="copy the folded stacks (--postgres: the figures) here"
    )
    beside_python = Path(sys.executable).with_name("py-spy")  # the venv's (dev group)
    parser.add_argument(
        "--py-spy", default=str(beside_python) if beside_python.exists() else "py-spy"
    )
    args = parser.parse_args()
    if args.steps:
        print_steps(args)
        return 0
    if args.postgres:
        with tempfile.TemporaryDirectory(prefix="queue-postgres-") as temporary:
            asyncio.run(print_postgres(args, Path(temporary)))
        return 0
    with tempfile.TemporaryDirectory(prefix="queue-profile-") as temporary:
        folded = asyncio.run(profile(args, Path(temporary)))
        print(report(folded, args.top))
        if args.keep:
            shutil.copy(folded, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
