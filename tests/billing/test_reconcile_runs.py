"""Reconcile of all customers, one run at a time (finding 6): Console's calls and the
CLI share a lease and a checkpoint; a call is bounded and the next one resumes."""

from __future__ import annotations

import asyncio
import os

import pytest

from raxx_queue.api import reconcile as reconcile_route
from raxx_queue.billing.reconcile_run import JOB, RunBounds
from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.server import StripeServer
from tests.conftest import AppClient
from tests.support import values
from tests.support.database import Conn
from tests.support.process import run_cli, service_env

from .test_reconcile import RECONCILE, _customer_in_sync


def _stripe_reads(double: StripeDouble) -> int:
    return len([r for r in double.requests if r.method == "GET"])


async def _three_customers(client: AppClient, double: StripeDouble, db: Conn) -> None:
    for k in (1, 2, 3):
        await _customer_in_sync(client, double, k)
    await db.execute("UPDATE billing_subscription SET status = 'unpaid'")
    double.requests.clear()


async def test_concurrent_calls_make_one_run_and_the_others_are_409(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    await _three_customers(client, stripe_double, db)
    answers = await asyncio.gather(
        *(client.post(RECONCILE, json={"all": True}, headers=values.CONSOLE) for _ in range(3))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200, 409, 409]
    [ran] = [a.json() for a in answers if a.status_code == 200]
    assert (ran["checked"], ran["drifted"], ran["complete"], ran["remaining"]) == (3, 3, True, 0)
    refused = [a.json()["error"]["code"] for a in answers if a.status_code == 409]
    assert refused == ["RECONCILE_RUNNING"] * 2
    assert _stripe_reads(stripe_double) == 9  # three reads per customer, once (was 27)
    # the lease is free again, the run recorded
    again = await client.post(RECONCILE, json={"all": True}, headers=values.CONSOLE)
    assert again.status_code == 200
    assert again.json()["drifted"] == 0
    outcomes = await db.fetch("SELECT outcome FROM billing_job_run WHERE job = $1", JOB)
    assert [r["outcome"] for r in outcomes] == ["ok", "ok"]


async def test_a_running_cli_run_makes_the_route_409_and_keeps_its_checkpoint(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    await _three_customers(client, stripe_double, db)
    await db.execute(
        "INSERT INTO billing_job_lease (job, holder, lease_until)"
        " VALUES ($1, 'reconcile:cli-run', now() + interval '2 minutes')",
        JOB,
    )
    await db.execute("INSERT INTO billing_job_checkpoint (job, position) VALUES ($1, '1')", JOB)
    response = await client.post(RECONCILE, json={"all": True}, headers=values.CONSOLE)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "RECONCILE_RUNNING"
    assert _stripe_reads(stripe_double) == 0
    assert await db.fetchval("SELECT position FROM billing_job_checkpoint") == "1"


async def test_a_call_is_bounded_and_the_next_resumes_from_the_checkpoint(
    client: AppClient, db: Conn, stripe_double: StripeDouble, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _three_customers(client, stripe_double, db)
    monkeypatch.setattr(reconcile_route, "ROUTE_BOUNDS", RunBounds(max_customers=2))
    first = await client.post(RECONCILE, json={"all": True}, headers=values.CONSOLE)
    assert first.status_code == 200
    assert (first.json()["checked"], first.json()["complete"], first.json()["remaining"]) == (
        2,
        False,
        1,
    )
    second_id = await db.fetchval("SELECT id FROM billing_customer ORDER BY id OFFSET 1 LIMIT 1")
    assert await db.fetchval("SELECT position FROM billing_job_checkpoint") == str(second_id)
    second = await client.post(RECONCILE, json={"all": True}, headers=values.CONSOLE)
    assert (second.json()["checked"], second.json()["complete"]) == (1, True)
    assert await db.fetchval("SELECT count(*) FROM billing_job_checkpoint") == 0
    assert _stripe_reads(stripe_double) == 9  # each customer read once over both calls
    statuses = await db.fetch("SELECT status FROM billing_subscription")
    assert {r["status"] for r in statuses} == {"active"}


@pytest.mark.slow
async def test_the_cli_refuses_to_start_while_another_run_holds_the_lease(
    db: Conn, clean_db: str, stripe_double: StripeDouble
) -> None:
    await db.execute(
        "INSERT INTO billing_job_lease (job, holder, lease_until)"
        " VALUES ($1, 'reconcile:console-call', now() + interval '2 minutes')",
        JOB,
    )
    with StripeServer(stripe_double) as server:
        env = {
            **service_env(clean_db, 8000),
            "STRIPE_API_BASE": server.url,
            "STRIPE_RESTRICTED_KEY": values.STRIPE_KEY,
        }
        result = run_cli("reconcile", "--all", env={**os.environ, **env})
    assert result.returncode == 1
    [line] = [line for line in result.stderr.splitlines() if line.startswith("reconcile:")]
    assert "RECONCILE_RUNNING" not in line
    assert "a reconcile of all customers is running" in line
    assert stripe_double.requests == []
