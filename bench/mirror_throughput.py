"""Mirror dispatcher throughput with signing on, and the backlog after a burst of changes.

    TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres \
        .venv/bin/python -m bench.mirror_throughput --burst 50000

A fresh, migrated database gets a burst of pending mirror changes in one statement (as
if that many customers changed at once); the dispatcher, with its production settings
and every push signed (Standard Webhooks, one or two secrets), drains them into the
test Raptor receiver, which runs in its own process and verifies every push with the
`standardwebhooks` package. Reported: pushes per second, the backlog each second until
it is gone, and how long the digest of the drift check takes over that many rows.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import time
from multiprocessing.connection import Connection
from typing import Any

import asyncpg
from tests.conftest import make_settings
from tests.peers.raptor_receiver import RaptorReceiver, SignatureCheck
from tests.support import values
from tests.support.database import create_database, drop_database, migrate

from raxx_queue.db.pool import Database
from raxx_queue.mirror.digest import bucket_digests
from raxx_queue.mirror.dispatcher import DispatcherConfig, run_mirror_dispatcher
from raxx_queue.wakeups import Wakeup

# One statement: `count` customers' rows pending at once, as after a burst of changes.
BURST = """
INSERT INTO billing_subscription_mirror
       (queue_customer_id, plan_tier, status, current_period_end, entitled, version)
SELECT 'cust_' || n, 'pro', 'active', now() + interval '30 days', true, 1
  FROM generate_series(1, $1) AS n
"""
PENDING = "SELECT count(*) FROM billing_subscription_mirror WHERE version > pushed_version"
# Queue's webhook peak, SPEC §10: the dispatcher keeps up if it pushes at least this.
WEBHOOK_PEAK = 950.0


def serve_raptor(pipe: Connection, secrets: list[str]) -> None:
    """The receiver's process: verify every push until told to stop, then report."""
    check = SignatureCheck({f"secret{n}": s for n, s in enumerate(secrets)})
    with RaptorReceiver(token=values.MIRROR_TOKEN, signatures=check) as raptor:
        pipe.send(raptor.url)
        pipe.recv()  # stop
        pushes = raptor.pushes
        pipe.send(
            {
                "pushes": len(pushes),
                "accepted": sum(p.accepted for p in pushes),
                "verified": sum(p.verified_by is not None for p in pushes),
                "rows": len(raptor.rows),
            }
        )


async def drain(
    url: str, raptor_url: str, burst: int, secrets: list[str], config: DispatcherConfig
) -> dict[str, Any]:
    conn = await asyncpg.connect(url)
    db = Database(url)
    await db.open()
    try:
        started = time.monotonic()
        await conn.execute(BURST, burst)
        inserted = time.monotonic() - started
        settings = make_settings(
            url,
            raptor_mirror_url=raptor_url,
            raptor_mirror_signing_secret=",".join(secrets),
            log_level="WARNING",
        )
        backlog: list[tuple[float, int]] = []
        began_at = await conn.fetchval("SELECT clock_timestamp()")
        cpu_before = resource.getrusage(resource.RUSAGE_SELF)
        async with run_mirror_dispatcher(settings, db, Wakeup(), config):
            start = time.monotonic()
            pending = burst
            while pending:
                await asyncio.sleep(1.0)  # a bench samples; tests await
                pending = await conn.fetchval(PENDING)
                backlog.append((time.monotonic() - start, pending))
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (
            cpu_before.ru_utime + cpu_before.ru_stime
        )
        # the last sample overshoots: the database knows when the last push was recorded
        last = await conn.fetchval("SELECT max(last_pushed_at) FROM billing_subscription_mirror")
        drained = (last - began_at).total_seconds()
        digest_seconds = {}
        for buckets in (256, 4096):
            began = time.monotonic()
            await bucket_digests(conn, buckets)
            digest_seconds[buckets] = time.monotonic() - began
    finally:
        await db.close()
        await conn.close()
    return {
        "inserted": inserted,
        "backlog": backlog,
        "drained": drained,
        "cpu": cpu,
        "digest_seconds": digest_seconds,
    }


async def run(burst: int, secrets: list[str], config: DispatcherConfig) -> None:
    server = os.environ["TEST_DATABASE_URL"]
    url = await create_database(server, prefix="queue_bench")
    migrate(url)
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    receiver = context.Process(target=serve_raptor, args=(theirs, secrets), daemon=True)
    receiver.start()
    try:
        raptor_url = ours.recv()
        result = await drain(url, raptor_url, burst, secrets, config)
        ours.send("stop")
        report = ours.recv()
    finally:
        receiver.join(timeout=30)
        await drop_database(server, url)

    rate = burst / result["drained"]
    print(
        f"burst: {burst} pending changes (inserted in {result['inserted']:.2f} s), "
        f"{len(secrets)} signing secret(s), dispatcher batch {config.batch_size}"
    )
    samples = result["backlog"]
    shown = [sample for n, sample in enumerate(samples) if n % 5 == 4 or n == len(samples) - 1]
    print("backlog: " + ", ".join(f"{t:.0f}s={pending}" for t, pending in shown))
    print(f"drained in {result['drained']:.2f} s: {rate:.0f} pushes/s")
    print(
        f"dispatcher process CPU: {result['cpu']:.2f} s, {result['cpu'] / burst * 1000:.2f} ms"
        f" per push ({burst / result['cpu']:.0f} pushes per CPU-second)"
    )
    print(
        f"Raptor received {report['pushes']} pushes, {report['accepted']} accepted, "
        f"{report['verified']} verified by standardwebhooks, {report['rows']} rows held"
    )
    verdict = "keeps up with" if rate >= WEBHOOK_PEAK else "falls behind"
    print(f"{verdict} the webhook peak of {WEBHOOK_PEAK:.0f} changes/s")
    for buckets, seconds in result["digest_seconds"].items():
        print(f"digest of {burst} rows in {buckets} buckets: {seconds * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=50_000, help="pending changes at once")
    parser.add_argument(
        "--secrets", type=int, choices=(1, 2), default=1, help="2: as during a rotation"
    )
    parser.add_argument(
        "--batch", type=int, default=DispatcherConfig.batch_size, help="rows per round"
    )
    args = parser.parse_args()
    secrets = [values.MIRROR_SIGNING_SECRET, values.NEW_MIRROR_SIGNING_SECRET][: args.secrets]
    asyncio.run(run(args.burst, secrets, DispatcherConfig(batch_size=args.batch)))


if __name__ == "__main__":
    main()
