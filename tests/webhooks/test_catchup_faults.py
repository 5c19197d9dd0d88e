"""The catch-up when Stripe is busy, failing or silent, and when events are older than it keeps."""

from __future__ import annotations

import time

import orjson
import pytest

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.recording import FailureKind
from raxx_queue.stripe_gateway import build_stripe_gateway
from raxx_queue.webhooks.event_listing import (
    HANDLED_TYPES,
    MAX_TYPES_PER_LIST,
    EventReader,
    ReaderConfig,
    type_groups,
)
from tests.conftest import make_settings
from tests.support.catchup import Sleeps, catchup_app, catchup_config, recent_stream, worker
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.webhooks import deliver_ok

CHECKPOINT = "SELECT position FROM billing_job_checkpoint WHERE job = 'stripe-event-catchup'"
ATTEMPTS = 4


@pytest.mark.parametrize(
    ("kind", "outcome"),
    [
        ("rate_limit", "rate_limited"),
        ("server_error", "stripe_unavailable"),
        ("timeout", "stripe_unavailable"),
    ],
)
async def test_stripe_failing_backs_off_keeps_the_checkpoint_and_the_worker_alive(
    clean_db: str, db: Conn, stripe_double: StripeDouble, kind: FailureKind, outcome: str
) -> None:
    stream = recent_stream(4, span=1200)
    sleeps = Sleeps()
    config = catchup_config(
        sleeps, autostart=True, attempts=ATTEMPTS, poll_seconds=0.05, retry_failed_after=0.1
    )
    async with catchup_app(clean_db, stripe_double, config) as client:
        for event in stream[:5]:
            stripe_double.add_event(event)
            await deliver_ok(client, event)
        catchup = worker(client)
        first = await catchup.wait_for_runs(1, timeout=30)
        checkpoint = await db.fetchval(CHECKPOINT)
        stripe_double.fail_always("/v1/events", kind)
        for event in stream[5:]:
            stripe_double.add_event(event, delivered=False)
        # the next turn is due after the interval: ask for one now
        failed = await catchup.run_once(force=True)
        unchanged = await db.fetchval(CHECKPOINT)
        applied_while_failing = await db.fetchval(
            "SELECT count(*) FROM processed_stripe_events WHERE source = 'catchup'"
        )
        alive = catchup.running
        stripe_double.clear_failures()
        # a failed run is retried soon, by the loop itself (a turn it began before the
        # failures were cleared may fail once more)
        recovered = await catchup.wait_for_runs(catchup.runs + 1, timeout=30)
        for _ in range(3):
            if recovered.outcome == "ok":
                break
            recovered = await catchup.wait_for_runs(catchup.runs + 1, timeout=30)

    assert first.outcome == "ok"
    assert failed is not None
    assert failed.outcome == outcome
    assert failed.applied_count == 0
    assert failed.retries == ATTEMPTS - 1
    assert len(sleeps.delays) == ATTEMPTS - 1
    # capped exponential backoff with jitter: each wait at least half its step
    for attempt, delay in enumerate(sleeps.delays, start=1):
        assert 2.0 ** (attempt - 1) / 2 <= delay <= 2.0 ** (attempt - 1)
    assert checkpoint is not None
    assert unchanged == checkpoint
    assert applied_while_failing == 0
    assert alive
    assert recovered.outcome == "ok"
    assert recovered.applied_count == len(stream) - 5


async def test_a_429_waits_what_retry_after_says_then_goes_on(
    clean_db: str, stripe_double: StripeDouble
) -> None:
    stream = recent_stream(2, span=600)
    for event in stream:
        stripe_double.add_event(event, delivered=False)
    sleeps = Sleeps()
    async with catchup_app(clean_db, stripe_double, catchup_config(sleeps)) as client:
        stripe_double.fail_next("/v1/events", "rate_limit", retry_after=7, times=2)
        report = await worker(client).run_once(force=True)

    assert report is not None
    assert report.outcome == "ok"
    assert report.rate_limited == 2
    assert sleeps.delays == [7.0, 7.0]
    assert report.applied_count == len(stream)


async def test_a_retry_after_longer_than_the_longest_wait_is_capped(
    clean_db: str, stripe_double: StripeDouble
) -> None:
    sleeps = Sleeps()
    config = catchup_config(sleeps, max_wait=10.0)
    async with catchup_app(clean_db, stripe_double, config) as client:
        stripe_double.fail_next("/v1/events", "rate_limit", retry_after=3000)
        report = await worker(client).run_once(force=True)

    assert report is not None
    assert report.outcome == "ok"
    assert sleeps.delays == [10.0]


async def test_a_checkpoint_older_than_stripes_30_days_is_reported_not_skipped(
    clean_db: str, db: Conn, stripe_double: StripeDouble, captured_logs: CapturedLogs
) -> None:
    now = int(time.time())
    forty_days_ago = now - 40 * 86_400
    stream = recent_stream(2, span=600)
    for event in stream:
        stripe_double.add_event(event, delivered=True)
    async with catchup_app(clean_db, stripe_double) as client:
        await db.execute(
            "INSERT INTO billing_job_checkpoint (job, position) VALUES ($1, $2)",
            "stripe-event-catchup",
            orjson.dumps({"through": forty_days_ago}).decode(),
        )
        report = await worker(client).run_once(force=True)
        health = (await client.get("/health")).json()["stripe_events"]

    assert report is not None
    assert report.outcome == "gap"
    assert report.gap is not None
    assert report.gap["from"] == forty_days_ago
    assert now - 30 * 86_400 <= report.gap["to"] <= now - 29 * 86_400
    assert report.applied_count == len(stream)  # what Stripe still has is applied
    assert health["last_run"]["outcome"] == "gap"
    assert health["last_run"]["gap"] == report.gap
    [line] = [e for e in captured_logs.entries if e["event"] == "catchup_events_beyond_retention"]
    assert line["level"] == "error"
    assert "reconcile --all" in line["hint"]


async def test_a_first_run_on_a_quiet_account_reports_no_gap(
    clean_db: str, stripe_double: StripeDouble
) -> None:
    """Without a checkpoint the anchor is only the newest event Queue holds: received
    long ago, it says nothing was missed, and the run looks back as far as Stripe keeps."""
    [long_ago] = recent_stream(1, span=60, end=int(time.time()) - 40 * 86_400)[:1]
    [recent] = recent_stream(1, span=60)[-1:]
    stripe_double.add_event(recent, delivered=True)
    async with catchup_app(clean_db, stripe_double) as client:
        assert await deliver_ok(client, long_ago) == "applied"
        report = await worker(client).run_once(force=True)

    assert report is not None
    assert report.outcome == "ok"
    assert report.gap is None
    assert report.applied_count == 1


async def test_reads_are_paced_under_the_configured_rate(
    clean_db: str, stripe_double: StripeDouble
) -> None:
    gateway = build_stripe_gateway(make_settings(clean_db), stripe_double.transport)
    assert gateway is not None
    config = ReaderConfig(rate=20.0, attempts=1, backoff_base=1.0, backoff_cap=1.0, max_wait=1.0)

    async def keepalive() -> None:
        return None

    reader = EventReader(gateway, config, keepalive=keepalive, sleep=Sleeps())
    started = time.monotonic()
    for _ in range(6):
        await reader.newest_created()
    elapsed = time.monotonic() - started
    await gateway.aclose()

    # one request per group of types each time
    assert reader.stats.requests == 6 * len(type_groups(HANDLED_TYPES))
    # six requests at 20 a second: five intervals of 50 ms at least
    assert elapsed >= 5 / 20


def test_more_types_than_one_list_takes_are_listed_in_groups() -> None:
    names = [f"type.{n:02d}" for n in range(2 * MAX_TYPES_PER_LIST + 1)]

    groups = type_groups(names)

    assert [len(g) for g in groups] == [20, 20, 1]
    assert sorted(n for g in groups for n in g) == names
    # the handled types (disputes among them) take two lists
    assert [len(g) for g in type_groups(HANDLED_TYPES)] == [20, len(HANDLED_TYPES) - 20]
