"""Runs the real sqitch against a Postgres URL (migrations/sqitch)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg

from raxx_queue.db.pool import Connection
from raxx_queue.errors import ServiceError
from raxx_queue.settings import ConfigError

SQITCH_PROJECT = "raxx_queue"


class MigrationError(Exception):
    """sqitch failed; the message carries its output with the target hidden."""


def find_migrations_dir(configured: Path | None = None) -> Path:
    candidates = [configured] if configured else []
    candidates += [
        Path.cwd() / "migrations" / "sqitch",
        Path(__file__).resolve().parents[3] / "migrations" / "sqitch",
    ]
    for candidate in candidates:
        if candidate is not None and (candidate / "sqitch.plan").is_file():
            return candidate
    raise ConfigError("QUEUE_MIGRATIONS_DIR: no sqitch.plan found (run from the repository root)")


@dataclass(frozen=True)
class SchemaHead:
    """Where a schema stands: its last change, and how many changes it holds (a
    reworked change repeats a name, so the name alone cannot tell two heads apart)."""

    change: str
    changes: int


def plan_head(migrations_dir: Path) -> SchemaHead:
    """The head sqitch.plan describes."""
    changes = [
        line.split()[0]
        for line in (migrations_dir / "sqitch.plan").read_text().splitlines()
        if line.strip() and not line.strip().startswith(("%", "#", "@"))
    ]
    return SchemaHead(changes[-1] if changes else "", len(changes))


def sqitch_target(url: str) -> tuple[str, str | None]:
    """postgres(ql)://user:pw@host:port/db?x → (db:pg://user@host:port/db?x, pw)."""
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql"}:
        raise ConfigError("DATABASE_URL: must be a postgres:// or postgresql:// URL")
    netloc = parts.hostname or ""
    if parts.hostname and ":" in parts.hostname:
        netloc = f"[{parts.hostname}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    password = unquote(parts.password) if parts.password else None
    target = urlunsplit(("db:pg", netloc, parts.path or "/", parts.query, ""))
    return target, password


def run_sqitch(args: list[str], url: str, migrations_dir: Path) -> str:
    """Run `sqitch <args> <target>`; the password travels in the environment, not argv."""
    sqitch = shutil.which("sqitch")
    if sqitch is None:
        raise MigrationError("sqitch is not installed (apt-get install sqitch libdbd-pg-perl)")
    target, password = sqitch_target(url)
    env = {**os.environ, "SQITCH_PASSWORD": password or ""}
    env.pop("PGPASSWORD", None)
    result = subprocess.run(  # noqa: S603 - fixed executable, arguments are ours
        [sqitch, *args, target],
        cwd=migrations_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    output = (result.stdout + result.stderr).replace(target, "<database>")
    if result.returncode != 0:
        raise MigrationError(f"sqitch {args[0]} failed:\n{output.strip()}")
    return output


def deploy(url: str, migrations_dir: Path) -> str:
    return run_sqitch(["deploy", "--verify"], url, migrations_dir)


def revert(url: str, migrations_dir: Path) -> str:
    return run_sqitch(["revert", "-y"], url, migrations_dir)


def verify(url: str, migrations_dir: Path) -> str:
    return run_sqitch(["verify"], url, migrations_dir)


HEAD_SQL = """
SELECT (SELECT change FROM sqitch.changes WHERE project = $1
         ORDER BY committed_at DESC LIMIT 1) AS change,
       (SELECT count(*) FROM sqitch.changes WHERE project = $1) AS changes
"""


class NotMigrated(ServiceError):
    status = 503
    code = "NOT_MIGRATED"

    def __init__(self, head: SchemaHead | None, expected: SchemaHead | None) -> None:
        super().__init__(
            f"database schema is at {_describe(head)}; this build expects {_describe(expected)}"
        )


def _describe(head: SchemaHead | None) -> str:
    return "nothing" if head is None else f"{head.change} ({head.changes} changes)"


async def deployed_head(conn: Connection, timeout: float) -> SchemaHead | None:
    """The head deployed in the database; None when it was never migrated."""
    try:
        row = await conn.fetchrow(HEAD_SQL, SQITCH_PROJECT, timeout=timeout)
    except asyncpg.UndefinedTableError:  # no sqitch registry
        return None
    if row is None or row["change"] is None:
        return None
    return SchemaHead(row["change"], row["changes"])
