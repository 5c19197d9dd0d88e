"""Raptor's answers as Standard Webhooks advises: 410 disables, Retry-After is honoured,
no answer within the timeout is retried."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import replace
from email.utils import formatdate

import pytest
from prometheus_client import REGISTRY

from raxx_queue.mirror.delivery import parse_retry_after
from raxx_queue.mirror.dispatcher import DispatcherConfig
from tests.conftest import make_settings
from tests.mirror.conftest import MirrorApp
from tests.mirror.steps import FAST, add_customer, change, holds_versions, nudge, versions
from tests.peers.raptor_receiver import RaptorReceiver
from tests.support.database import Conn
from tests.support.logs import CapturedLogs
from tests.support.process import run_cli
from tests.support.sentry_capture import sentry_events

CUSTOMERS = [f"cust_gone_{n}" for n in range(3)]


def disabled_gauge() -> float | None:
    return REGISTRY.get_sample_value("queue_mirror_destination_disabled")


async def until_disabled(db: Conn, timeout: float = 5.0) -> None:
    """The dispatcher disables after recording the 410's round: poll (nothing to await)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    query = "SELECT disabled_at IS NOT NULL FROM billing_mirror_destination"
    while not await db.fetchval(query):
        assert loop.time() < deadline, "the destination was not disabled"
        await asyncio.sleep(0.01)


async def until_recorded(db: Conn, customer: str, timeout: float = 5.0) -> None:
    """The failed push's result is recorded after its answer: poll (nothing to await)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    query = "SELECT push_attempts FROM billing_subscription_mirror WHERE queue_customer_id = $1"
    while not await db.fetchval(query, customer):
        assert loop.time() < deadline, "the failed push was not recorded"
        await asyncio.sleep(0.01)


async def seconds_until_due(db: Conn, customer: str) -> float:
    value = await db.fetchval(
        "SELECT extract(epoch FROM next_push_at - now())::float8"
        " FROM billing_subscription_mirror WHERE queue_customer_id = $1",
        customer,
    )
    return float(value)


async def test_410_disables_the_destination_holds_every_push_and_resume_sends_them(
    db: Conn,
    clean_db: str,
    mirror_app: MirrorApp,
    receiver: RaptorReceiver,
    captured_logs: CapturedLogs,
) -> None:
    for customer in CUSTOMERS:
        await add_customer(db, customer)
    receiver.fail(410, times=1)
    with sentry_events(make_settings(clean_db)) as events:
        async with mirror_app(config=replace(FAST, batch_size=1)) as client:
            await receiver.await_for(lambda pushes: any(p.status == 410 for p in pushes))
            dispatcher = client.services.workers.mirror
            assert dispatcher is not None
            await until_disabled(db)
            # changes keep coming while disabled: held, nothing claimed, nothing sent
            for customer in CUSTOMERS:
                await change(db, customer)
            nudge(client)
            assert await dispatcher.dispatch_once() == 0
            assert len(receiver.pushes) == 1
            assert await db.fetchval(
                "SELECT count(*) FROM billing_subscription_mirror WHERE version > pushed_version"
            ) == len(CUSTOMERS)
            assert disabled_gauge() == 1

            env = {**os.environ, "DATABASE_URL": clean_db, "QUEUE_ENV": "test"}
            done = await asyncio.to_thread(run_cli, "mirror", "resume", env=env)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout) == {"resumed": True, "pending": len(CUSTOMERS)}
            await receiver.await_for(holds_versions(await versions(db)), timeout=10)

    assert await db.fetchval("SELECT disabled_at FROM billing_mirror_destination") is None
    assert {key: row["version"] for key, row in receiver.rows.items()} == await versions(db)
    assert captured_logs.logged(event="raptor_mirror_disabled", level="error", status=410)
    messages = [event.get("message") or "" for event in events]
    assert any("410 Gone" in message for message in messages), messages
    again = await asyncio.to_thread(run_cli, "mirror", "resume", env=env)
    assert json.loads(again.stdout) == {"resumed": False, "pending": 0}


@pytest.mark.parametrize(
    ("status", "retry_after"), [(429, "30"), (503, "30"), (502, None), (504, "date")]
)
async def test_retry_after_is_honoured_on_429_502_503_504(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver, status: int, retry_after: str | None
) -> None:
    await add_customer(db, "cust_busy")
    header = formatdate(time.time() + 30, usegmt=True) if retry_after == "date" else retry_after
    receiver.fail(status, times=1, retry_after=header)
    async with mirror_app(config=replace(FAST, poll_interval=10.0)):
        await receiver.await_for(lambda pushes: any(p.status == status for p in pushes))
        await until_recorded(db, "cust_busy")
        due_in = await seconds_until_due(db, "cust_busy")
    if header is None:
        assert due_in <= FAST.retry_cap  # no Retry-After: the row's own backoff
    else:
        assert 27 <= due_in <= 31  # not before Raptor asked, whatever the backoff says
        assert len(receiver.pushes) == 1  # and no probe either


def test_retry_after_reads_seconds_and_dates_and_ignores_nonsense() -> None:
    now = 1_800_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now) == pytest.approx(90.0)
    assert parse_retry_after(formatdate(now - 90, usegmt=True), now) == 0.0
    for nonsense in (None, "", "soon", "-5", "1.5e9"):
        assert parse_retry_after(nonsense, now) is None


async def test_a_push_without_an_answer_in_time_is_retried_with_the_same_id(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    assert DispatcherConfig().request_timeout == 15.0  # production: no answer in 15 s
    await add_customer(db, "cust_slow")
    receiver.hang(times=1)
    async with mirror_app():  # FAST: 1 s
        await receiver.await_for(lambda pushes: any(p.accepted for p in pushes), timeout=10)
        receiver.release()
    attempts = [p for p in receiver.pushes if p.rows]
    assert len(attempts) >= 2
    assert {p.headers["webhook-id"] for p in attempts} == {"mirror_cust_slow_v1"}
    state = await db.fetchrow(
        "SELECT pushed_version, last_push_error FROM billing_subscription_mirror"
    )
    assert state is not None
    assert state["pushed_version"] == 1
