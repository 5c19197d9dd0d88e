"""Where a webhook's time goes: a sampling profile of one worker under steady load.

    .venv/bin/python -m bench.profile                    # 20 s at concurrency 32
    .venv/bin/python -m bench.profile --concurrency 8 --customers 800
    .venv/bin/python -m bench.profile --route read      # GET /subscriptions/{id}

Starts `raxx-queue serve` (one worker, production logging) on a fresh migrated
database, drives signed webhooks (or, after them, subscription reads) at it from
bench/loadgen.py, and samples the worker with py-spy (a dev dependency; it reads the
process from outside, so the service runs unmodified). Prints the share of busy
samples (idle time left out) by layer and by function, each sample charged to the
code it was in; --keep saves the folded stacks for flame graphs. (Coroutine stacks
restart at each resumption, so time "below" a function means little here; its own
time is what counts.)
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
    command += ["--duration", str(args.seconds), "--output", str(folded), "--nonblocking"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def profile(args: argparse.Namespace, scratch: Path) -> Path:
    bench = Bench(QUICK, scratch)
    template = await bench.template()
    url = await bench.clone(template)
    bench.database = url.rsplit("/", 1)[1]
    taken = CustomerBlocks(args.customers, seed=11).take(args.customers)
    folded = scratch / "profile.folded"
    try:
        with bench.service(url, 1, "profile") as service:
            (pid,) = bench.workers = worker_pids(service.process.pid)
            webhooks = {
                "kind": "webhook",
                "url": service.url,
                "secret": values.WEBHOOK_SECRET,
                "bodies": bench.bodies_file(taken),
                "concurrency": args.concurrency,
            }
            reads = {
                "kind": "get",
                "url": service.url,
                "paths": [f"/api/v1/billing/subscriptions/{k}" for k in taken.queue_customer_ids],
                "token": values.RAPTOR_TOKEN,
                "concurrency": args.concurrency,
                "duration": args.seconds + 2,
            }
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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--route", choices=("webhook", "read"), default="webhook")
    parser.add_argument("--customers", type=int, default=1500, help="about 10 events each")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=int, default=20, help="how long py-spy samples")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--keep", type=Path, help="copy the folded stacks here")
    beside_python = Path(sys.executable).with_name("py-spy")  # the venv's (dev group)
    parser.add_argument(
        "--py-spy", default=str(beside_python) if beside_python.exists() else "py-spy"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="queue-profile-") as temporary:
        folded = asyncio.run(profile(args, Path(temporary)))
        print(report(folded, args.top))
        if args.keep:
            shutil.copy(folded, args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
