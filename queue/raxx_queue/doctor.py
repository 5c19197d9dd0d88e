"""`raxx-queue doctor`: what an operator checks before and after a deploy.

Each check prints one line, `ok`, `warn` or `fail`, naming settings but never their
values (the database URL included); the command exits 1 when any line is not `ok`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import asyncpg

from raxx_queue.db.budget import connection_budget
from raxx_queue.db.migrate import SchemaHead, deployed_head, find_migrations_dir, plan_head
from raxx_queue.db.pool import CONNECTION_ERRORS
from raxx_queue.db.pooling import connect_options
from raxx_queue.settings import ConfigError, PoolMode, Settings, load_settings

DATABASE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Finding:
    status: str  # ok | warn | fail
    check: str
    detail: str


Check = Callable[[Settings], Finding]


def check_budget(settings: Settings) -> Finding:
    budget = connection_budget(settings, settings.web_concurrency)
    return Finding("warn" if budget.exceeded else "ok", "connection budget", budget.describe())


def check_pool_mode(settings: Settings) -> Finding:
    if settings.database_pool_mode is PoolMode.TRANSACTION:
        detail = (
            "transaction (behind PgBouncer): no prepared-statement cache, no start-up"
            " parameters, settings per transaction; migrate needs a direct DATABASE_URL"
        )
    else:
        detail = "session (a direct connection, or a pooler in session mode)"
    return Finding("ok", "pool mode", detail)


async def _schema_head(dsn: str, mode: PoolMode) -> SchemaHead | None:
    conn = await asyncpg.connect(dsn, timeout=DATABASE_TIMEOUT, **connect_options(mode))
    try:
        return await deployed_head(conn, DATABASE_TIMEOUT)
    finally:
        await conn.close()


def check_database(settings: Settings) -> Finding:
    dsn = settings.database_dsn()
    if dsn is None:
        if settings.is_production:
            return Finding("fail", "database", "DATABASE_URL is not set")
        return Finding("ok", "database", "DATABASE_URL not set: serve starts the embedded one")
    try:
        head = asyncio.run(_schema_head(dsn, settings.database_pool_mode))
    except CONNECTION_ERRORS as error:
        # the error's type only: its message can carry the host and user
        return Finding("fail", "database", f"not reachable ({type(error).__name__})")
    except asyncpg.PostgresError as error:
        return Finding("fail", "database", f"refused: SQLSTATE {error.sqlstate}")
    try:
        expected: SchemaHead | None = plan_head(find_migrations_dir(settings.queue_migrations_dir))
    except ConfigError:
        expected = None
    if head is None:
        return Finding("fail", "database", "reachable, not migrated: run `raxx-queue migrate`")
    if expected is not None and head != expected:
        return Finding(
            "fail",
            "database",
            f"reachable, schema at {head.change}; this build expects {expected.change}",
        )
    return Finding("ok", "database", f"reachable, schema at {head.change}")


CHECKS: tuple[Check, ...] = (check_pool_mode, check_budget, check_database)


def run_doctor(out: TextIO) -> int:
    """Print one line per check; 0 when every check is ok."""
    try:
        settings = load_settings()
    except ConfigError as error:
        out.write(f"fail  configuration: {error}\n")
        return 1
    out.write("ok    configuration: every variable parses\n")
    findings = [check(settings) for check in CHECKS]
    for finding in findings:
        out.write(f"{finding.status:<5} {finding.check}: {finding.detail}\n")
    return 0 if all(finding.status == "ok" for finding in findings) else 1
