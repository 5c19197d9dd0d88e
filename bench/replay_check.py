"""Acceptance run for the webhook: a shuffled, duplicated stream sent to a running service.

    .venv/bin/python -m bench.replay_check [--customers 100] [--concurrency 16]

Generates the lifecycles of N customers (10 events each, mixed types), adds 10%
duplicates, shuffles, and sends them to `raxx-queue serve` over HTTP at fixed
concurrency. A second service on a second database receives the same events once
each, in order. Prints both outcomes, whether the business state is equal, and
`raxx-queue audit verify` for the shuffled run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import asyncpg
import httpx
from tests.support import values
from tests.support.database import create_database, drop_database, migrate, server_url
from tests.support.event_stream import event_stream, snapshot
from tests.support.process import running_service, service_env

from raxx_queue.simulator.events import signed


async def send_all(url: str, events: list[dict[str, Any]], concurrency: int) -> Counter[str]:
    semaphore = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:

        async def send(event: dict[str, Any]) -> str:
            body, header = signed(event, values.WEBHOOK_SECRET)
            async with semaphore:
                response = await http.post(
                    "/api/v1/billing/webhook",
                    content=body,
                    headers={"Stripe-Signature": header, "Content-Type": "application/json"},
                )
            if response.status_code != 200:
                return f"http_{response.status_code}"
            outcome: str = response.json()["outcome"]
            return outcome

        return Counter(await asyncio.gather(*(send(e) for e in events)))


async def state_of(url: str) -> dict[str, list[dict[str, Any]]]:
    conn = await asyncpg.connect(url)
    try:
        return await snapshot(conn)
    finally:
        await conn.close()


def audit_verify(database_url: str) -> dict[str, Any]:
    """`raxx-queue audit verify`, waiting for the sealer to catch up."""
    env = service_env(database_url, 8000)
    for _ in range(100):
        result = subprocess.run(
            [sys.executable, "-m", "raxx_queue.cli", "audit", "verify"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        report: dict[str, Any] = json.loads(result.stdout)
        if report["unsealed"] == 0 or not report["ok"]:
            report["exit_code"] = result.returncode
            return report
        time.sleep(0.2)
    raise RuntimeError("audit rows were not sealed")


async def main(customers: int, concurrency: int, seed: int) -> int:
    server = server_url()
    shuffled_db = await create_database(server, prefix="queue_replay")
    ordered_db = await create_database(server, prefix="queue_ordered")
    try:
        migrate(shuffled_db)
        migrate(ordered_db)
        in_order, deliveries = event_stream(customers, duplicates=0.1, seed=seed)
        with running_service(shuffled_db) as service:
            started = time.perf_counter()
            shuffled = await send_all(service.url, deliveries, concurrency)
            elapsed = time.perf_counter() - started
            report = audit_verify(shuffled_db)
        with running_service(ordered_db) as service:
            ordered = await send_all(service.url, in_order, 1)
        got, expected = await state_of(shuffled_db), await state_of(ordered_db)
        equal = got == expected
        print(
            f"events: {len(in_order)} distinct, {len(deliveries)} deliveries "
            f"({len(deliveries) - len(in_order)} duplicates), {customers} customers"
        )
        print(
            f"shuffled run: {dict(shuffled)} in {elapsed:.2f}s at concurrency "
            f"{concurrency} ({len(deliveries) / elapsed:.0f} deliveries/s)"
        )
        print(f"in-order run: {dict(ordered)}")
        for table in expected:
            print(
                f"  {table}: {len(expected[table])} rows, "
                f"{'equal' if got[table] == expected[table] else 'DIFFERENT'}"
            )
        print(f"state equal to in-order application: {equal}")
        print(f"raxx-queue audit verify: {json.dumps(report)}")
        return 0 if equal and report["ok"] else 1
    finally:
        await drop_database(server, shuffled_db)
        await drop_database(server, ordered_db)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.customers, args.concurrency, args.seed)))
