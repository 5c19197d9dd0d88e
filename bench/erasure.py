"""What erasure and retention cost: the triggers on every event, one erasure, a retention run.

    .venv/bin/python -m bench.erasure [--people 1000]

On a scratch database: applies each person's history (8 Stripe events: customer, card,
subscription, invoices paid and failed, a failed charge, a dispute) through
billing_apply_stripe_event, stored as the webhook lane stores them (the body as sent
beside a stub payload), in blocks alternately with the erasure triggers off and on;
erases one person among them; ages half the events past the retention period and
strips them as the retention job does. Prints the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

import asyncpg
from tests.privacy import person
from tests.support.database import create_database, drop_database, migrate, server_url

from raxx_queue.webhooks.intake import delivery_params
from raxx_queue.webhooks.pipeline import EventContext

# as the webhook lane stores a delivery: the body as sent beside a stub payload
APPLY = "SELECT outcome FROM billing_apply_stripe_event($1::jsonb, $2)"
TRIGGERS = (
    ("processed_stripe_events", "billing_event_redact"),
    ("billing_customer", "billing_customer_tombstone"),
)
CONTEXT = EventContext(price_tiers={"price_pro_monthly_test": "pro"}, grace_days=7)


async def _connect(url: str) -> asyncpg.Connection[Any]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(url)
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    return conn


async def _apply(conn: asyncpg.Connection[Any], people: range) -> list[float]:
    """Per-event milliseconds."""
    timings = []
    for k in people:
        events, _ = person.another(k, person.history())
        for event in events:
            params, raw = delivery_params(json.dumps(event).encode(), CONTEXT)
            started = time.perf_counter()
            await conn.fetchval(APPLY, params, raw)
            timings.append((time.perf_counter() - started) * 1000)
    return timings


async def _switch_triggers(conn: asyncpg.Connection[Any], on: bool) -> None:
    for table, trigger in TRIGGERS:
        state = "ENABLE" if on else "DISABLE"
        await conn.execute(f"ALTER TABLE {table} {state} TRIGGER {trigger}")


def _summary(timings: list[float]) -> str:
    ordered = sorted(timings)
    p95 = ordered[int(len(ordered) * 0.95)]
    mean, median = statistics.fmean(timings), statistics.median(timings)
    return f"mean {mean:.3f} ms, median {median:.3f} ms, p95 {p95:.3f} ms"


async def _erase(conn: asyncpg.Connection[Any], k: int) -> tuple[float, dict[str, Any]]:
    """Erase person k as the route does (under the lock); milliseconds and counts."""
    target, _ = person.another(k, person.history())
    queue_id = target[0]["data"]["object"]["metadata"]["queue_customer_id"]
    stripe_id = target[0]["data"]["object"]["id"]
    started = time.perf_counter()
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(billing_customer_lock_key($1))", stripe_id)
        erased = await conn.fetchval(
            "SELECT erased FROM billing_erase_customer($1, $2)", queue_id, stripe_id
        )
    return (time.perf_counter() - started) * 1000, erased


async def run(people: int) -> None:
    server = server_url()
    url = await create_database(server, prefix="queue_bench_erasure")
    try:
        migrate(url)
        conn = await _connect(url)
        try:
            # blocks alternately without and with the triggers, so a busy moment of a
            # shared machine weighs on both
            off: list[float] = []
            on: list[float] = []
            block = max(1, people // 20)
            for start in range(2, 2 + people, block):
                triggers = (start - 2) // block % 2 == 1
                await _switch_triggers(conn, on=triggers)
                timings = await _apply(conn, range(start, min(start + block, 2 + people)))
                (on if triggers else off).extend(timings)
            await _switch_triggers(conn, on=True)
            total = await conn.fetchval("SELECT count(*) FROM processed_stripe_events")
            print(f"events stored: {total} ({people} people x 8)")
            print(f"apply, erasure triggers off ({len(off)} events): {_summary(off)}")
            print(f"apply, erasure triggers on  ({len(on)} events): {_summary(on)}")

            elapsed, erased = await _erase(conn, 2 + people // 3)
            print(f"erase one person among {total} events: {elapsed:.1f} ms, {erased}")

            await conn.execute(
                "UPDATE processed_stripe_events SET received_at = now() - interval '40 days'"
                " WHERE event_id IN (SELECT event_id FROM processed_stripe_events"
                " ORDER BY event_id LIMIT $1)",
                total // 2,
            )
            stripped = before = after = 0
            started = time.perf_counter()
            while True:
                batch = await conn.fetchrow(
                    "SELECT * FROM billing_strip_old_payloads(now() - interval '35 days', 1000)"
                )
                assert batch is not None
                stripped += batch["stripped"]
                before += batch["bytes_before"]
                after += batch["bytes_after"]
                if batch["stripped"] < 1000:
                    break
            elapsed = time.perf_counter() - started
            print(
                f"retention: {stripped} payloads stripped in {elapsed:.2f} s "
                f"({stripped / elapsed:.0f}/s), stored bytes {before} -> {after}"
            )
            elapsed, erased = await _erase(conn, 2 + people - 100)  # among the unstripped
            print(
                f"erase one person, half the {total} payloads stripped: {elapsed:.1f} ms, "
                f"{erased['event_payloads']} events redacted"
            )
        finally:
            await conn.close()
    finally:
        await drop_database(server, url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--people", type=int, default=1000)
    args = parser.parse_args()
    asyncio.run(run(args.people))


if __name__ == "__main__":
    main()
