"""The connection budget and `raxx-queue doctor`: warned at start, reported on demand,
never a database URL in the output."""

from __future__ import annotations

import os
import subprocess

import pytest

from raxx_queue.db.budget import DEFAULT_RESERVE, ConnectionBudget, connection_budget
from raxx_queue.settings import PoolMode
from tests.conftest import make_settings
from tests.support import values
from tests.support.database import create_database, drop_database
from tests.support.log_hygiene import SESSION_LOGS
from tests.support.pgbouncer import SERVICE_ENV, PgBouncer
from tests.support.process import free_port, run_cli, running_service

ESSENTIAL_0 = 20
STANDARD_0 = 120


def doctor(database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("QUEUE_", "STRIPE_"))}
    clean.update(
        {
            "DATABASE_URL": database_url,
            "QUEUE_ENV": "staging",
            "BILLING_AUDIT_HMAC_KEY": values.AUDIT_KEY,
            "LOG_FORMAT": "json",
            **env,
        }
    )
    done = run_cli("doctor", env=clean, timeout=60)
    assert database_url not in done.stdout + done.stderr
    assert "postgres" + "ql://" not in done.stdout + done.stderr
    return done


def finding(done: subprocess.CompletedProcess[str], check: str) -> str:
    lines = [line for line in done.stdout.splitlines() if f" {check}: " in line]
    assert len(lines) == 1, done.stdout + done.stderr
    return lines[0]


def test_the_budget_counts_every_worker_and_the_reserve() -> None:
    budget = ConnectionBudget(
        workers=2, pool_size=10, reserve=DEFAULT_RESERVE, limit=ESSENTIAL_0, mode=PoolMode.SESSION
    )
    assert (budget.per_dyno, budget.needed, budget.exceeded) == (20, 26, True)
    assert budget.web_dynos_that_fit() == 0
    fits = ConnectionBudget(2, 3, DEFAULT_RESERVE, ESSENTIAL_0, PoolMode.SESSION)
    assert (fits.needed, fits.exceeded, fits.web_dynos_that_fit()) == (12, False, 2)
    standard = connection_budget(
        make_settings(None, database_connection_limit=STANDARD_0), workers=2
    )
    assert (standard.exceeded, standard.web_dynos_that_fit()) == (False, 5)


def test_behind_a_transaction_pooler_the_limit_binds_the_pooler() -> None:
    settings = make_settings(
        None, database_connection_limit=ESSENTIAL_0, database_pool_mode="transaction"
    )
    budget = connection_budget(settings, workers=4)
    assert budget.needed > ESSENTIAL_0
    assert budget.exceeded is False
    assert "PgBouncer's server pool" in budget.describe()


async def test_serve_warns_at_start_when_a_dyno_would_exceed_the_limit(clean_db: str) -> None:
    with running_service(
        clean_db, workers=2, LOG_LEVEL="INFO", DATABASE_CONNECTION_LIMIT=str(ESSENTIAL_0)
    ) as service:
        source = f"serve:{service.url.rsplit(':', 1)[1]}"
        warnings = [
            line
            for origin, line in SESSION_LOGS.lines()
            if origin == source and "database_connection_budget_exceeded" in line
        ]
    assert len(warnings) == 1, "one warning, from the supervisor, not one per worker"
    for field in ('"needed":26', '"limit":20', '"workers":2', '"pool_size":10'):
        assert field in warnings[0]


def test_doctor_reports_an_exceeded_budget(clean_db: str) -> None:
    done = doctor(clean_db, WEB_CONCURRENCY="2", DATABASE_CONNECTION_LIMIT=str(ESSENTIAL_0))
    assert done.returncode == 1
    line = finding(done, "connection budget")
    assert line.startswith("warn")
    assert "= 26" in line
    assert "exceeds the limit of 20" in line
    assert finding(done, "database").startswith("ok")


def test_doctor_passes_a_fitting_deploy(clean_db: str) -> None:
    done = doctor(clean_db, WEB_CONCURRENCY="2", DATABASE_CONNECTION_LIMIT=str(STANDARD_0))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "fits the limit of 120 (5 web dyno(s) fit)" in finding(done, "connection budget")
    assert "reachable, schema at " in finding(done, "database")


def test_doctor_through_pgbouncer(pgbouncer: PgBouncer, clean_db: str) -> None:
    done = doctor(
        pgbouncer.url_for(clean_db), DATABASE_CONNECTION_LIMIT=str(ESSENTIAL_0), **SERVICE_ENV
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert finding(done, "pool mode").startswith("ok    pool mode: transaction")
    assert "PgBouncer's server pool" in finding(done, "connection budget")


@pytest.mark.parametrize(
    ("database", "expected"),
    [
        ("unreachable", "not reachable (ConnectionRefusedError)"),
        ("unmigrated", "not migrated"),
    ],
)
async def test_doctor_names_a_database_problem_without_the_url(
    pg_server: str, database: str, expected: str
) -> None:
    if database == "unreachable":
        url = f"postgresql://queue:secret-pw@127.0.0.1:{free_port()}/queue"
        done = doctor(url)
    else:
        url = await create_database(pg_server, prefix="queue_doctor")
        try:
            done = doctor(url)
        finally:
            await drop_database(pg_server, url)
    assert done.returncode == 1
    line = finding(done, "database")
    assert line.startswith("fail")
    assert expected in line
    assert "secret-pw" not in done.stdout + done.stderr


def test_doctor_names_a_malformed_setting() -> None:
    done = doctor("postgresql://127.0.0.1/x", DATABASE_CONNECTION_LIMIT="twenty")
    assert done.returncode == 1
    assert done.stdout.startswith("fail  configuration: ")
    assert "DATABASE_CONNECTION_LIMIT" in done.stdout
    assert "twenty" not in done.stdout
