"""The test Postgres: TEST_DATABASE_URL when set, else the embedded server."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from raxx_queue.db.embedded import start_embedded_postgres
from raxx_queue.db.migrate import deploy, find_migrations_dir
from tests.support.log_hygiene import SESSION_LOGS

Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record]"

REPO = Path(__file__).resolve().parents[2]
MIGRATIONS = find_migrations_dir(REPO / "migrations" / "sqitch")

TABLES = (
    "billing_customer",
    "billing_subscription",
    "billing_invoice",
    "processed_stripe_events",
    "billing_action_log",
    "billing_subscription_mirror",
    "billing_job_checkpoint",
    "billing_job_lease",
    "billing_job_run",
    "billing_mirror_destination",
    "billing_erased_reference",
    "billing_dispute",
    "billing_payment_ref",
)


def server_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL") or start_embedded_postgres(
        REPO / ".queue-data" / "test"
    )
    SESSION_LOGS.watch("database URL", url)
    return url


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def with_params(url: str, **params: str) -> str:
    """The URL with these query parameters set (e.g. sslmode), the others kept."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update(params)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def create_database(server: str, prefix: str = "queue_test") -> str:
    """A new empty database on the server; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = with_database(server, name)
    SESSION_LOGS.watch("database URL", url)
    return url


async def drop_database(server: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def migrate(url: str) -> str:
    return deploy(url, MIGRATIONS)


async def truncate_all(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY")
        # tamper tests switch the append-only guard off
        await conn.execute(
            "ALTER TABLE billing_action_log ENABLE TRIGGER billing_action_log_append_only"
        )
    finally:
        await conn.close()


def production_url(database_url: str) -> str:
    """The local test server as production reaches it (loopback: no TLS needed)."""
    return with_params(database_url, sslmode="disable")


# What make_settings needs on top to run as production (nothing is pushed to the mirror)
PRODUCTION_OVERRIDES = {"queue_env": "production", "raptor_mirror_url": "http://127.0.0.1:9/m"}
