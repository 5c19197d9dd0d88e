"""Instructions per webhook, counted by callgrind: a figure a noisy machine cannot move.

    .venv/bin/python -m bench.instructions                 # under valgrind (Debian's)
    .venv/bin/python -m bench.instructions --no-valgrind   # CPU ms per webhook instead
    .venv/bin/python -m bench.instructions --workload fullsize   # full-size deliveries

Builds the app in process (no HTTP server, no load generator), against a fresh
migrated database, and calls it as an ASGI app with signed deliveries of the bench's
stream, one after the other, with production logging (INFO, JSON, to /dev/null). The
first quarter warms up; the rest is counted. Under valgrind only that stretch is
instrumented (callgrind_control), so start-up and imports are left out. The count
covers this process only - the app, its driver, the audit sealer - not Postgres.
Timings on a shared virtual machine move by a third from run to run; instruction
counts of the same code and inputs repeat to within a fraction of a percent.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

from tests.conftest import make_settings
from tests.support import values
from tests.support.database import create_database, drop_database, migrate, server_url

from bench.fullsize import FullSizeStream
from bench.stream import CustomerBlocks
from raxx_queue.app import create_app
from raxx_queue.simulator.events import sign

PATH = "/api/v1/billing/webhook"


def scope_for(body: bytes) -> dict[str, Any]:
    signature = sign(body, values.WEBHOOK_SECRET, int(time.time()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "headers": [
            (b"host", b"queue"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"stripe-signature", signature.encode()),
        ],
    }


async def deliver(app: Any, body: bytes) -> None:
    """One delivery through the whole ASGI stack; it must be acknowledged."""
    delivered = False
    replies: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        replies.append(message)

    await app(scope_for(body), receive, send)
    if replies[0]["status"] != 200:
        raise RuntimeError(f"delivery answered {replies[0]['status']}")


def callgrind(switch: str) -> None:
    """Turn instrumentation of this process on or off (when run under valgrind)."""
    command = ["callgrind_control", "--instr=" + switch, str(os.getpid())]
    subprocess.run(command, check=True, capture_output=True)


def workload_bodies(workload: str, customers: int) -> list[bytes]:
    """The deliveries: the mixed stream's, or full-size ones (each customer's first
    round, which creates its rows, then three more: the first quarter is the warm-up)."""
    if workload == "fullsize":
        return FullSizeStream(customers).take(customers * 4)
    return CustomerBlocks(customers, seed=3).take(customers).bodies


async def measure(
    customers: int, under_valgrind: bool, sink: TextIO, workload: str = "mixed"
) -> tuple[int, float]:
    server = server_url()
    url = await create_database(server, prefix="queue_instructions")
    migrate(url)
    try:
        app = create_app(make_settings(url, log_level="INFO", queue_env="staging"))
        logging.getLogger().handlers[0].setStream(sink)  # type: ignore[attr-defined]
        bodies = workload_bodies(workload, customers)
        warm = len(bodies) // 4
        async with app.router.lifespan_context(app):
            for body in bodies[:warm]:
                await deliver(app, body)
            if under_valgrind:
                callgrind("on")
            cpu = time.process_time()
            for body in bodies[warm:]:
                await deliver(app, body)
            cpu = time.process_time() - cpu
            if under_valgrind:
                callgrind("off")
        return len(bodies) - warm, cpu
    finally:
        await drop_database(server, url)


def total_instructions(out: Path) -> int:
    totals = [line for line in out.read_text().splitlines() if line.startswith("totals:")]
    if not totals:
        raise RuntimeError(f"no totals in {out}")
    return int(totals[-1].split()[1])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--customers", type=int, default=40, help="mixed: about 10 deliveries each; fullsize: 4"
    )
    parser.add_argument("--no-valgrind", action="store_true")
    parser.add_argument("--workload", choices=("mixed", "fullsize"), default="mixed")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.no_valgrind or args.inner:
        with Path(os.devnull).open("w") as sink:
            count, cpu = asyncio.run(measure(args.customers, args.inner, sink, args.workload))
        print(f"{count} webhooks: {cpu / count * 1000:.3f} ms CPU each", flush=True)
        return 0
    out = Path(tempfile.mkdtemp(prefix="queue-callgrind-")) / "callgrind.out"
    command = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
    command += [f"--callgrind-out-file={out}", sys.executable, "-m", "bench.instructions"]
    command += ["--inner", "--customers", str(args.customers), "--workload", args.workload]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out.exists():
        sys.stderr.write(done.stderr[-2000:])
        return 1
    count = int(done.stdout.split()[0])
    instructions = total_instructions(out)
    shutil.rmtree(out.parent)
    print(f"{count} webhooks: {instructions:,} instructions, {instructions / count:,.0f} each")
    return 0


if __name__ == "__main__":
    sys.exit(main())
