"""A real PgBouncer (Debian's package) in transaction mode in front of the test Postgres.

Started once per session by the `pgbouncer` fixture; `url_for(database_url)` gives the
URL of the same database through it, and `service_env` the settings a service needs
there. It refuses start-up parameters it does not know and keeps no server session
per client, as Heroku's connection pooling does.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from tests.support.process import free_port

PGBOUNCER = "/usr/sbin/pgbouncer"
START_TIMEOUT = 15.0
# Server sessions per database: above the most transactions a test keeps waiting at
# once (the crash test parks a customer's deliveries on a lock), below Postgres's limit.
POOL_SIZE = 40

# The settings a Queue process needs to run through it.
SERVICE_ENV = {"DATABASE_POOL_MODE": "transaction"}

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 2000
server_lifetime = 3600
log_connections = 0
log_disconnections = 0
"""


def _backend(server_url: str) -> tuple[str, int]:
    """(host or unix socket directory, port) of the server behind a URL."""
    parts = urlsplit(server_url)
    query = dict(parse_qsl(parts.query))
    host = query.get("host") or parts.hostname or "127.0.0.1"
    return host, int(query.get("port") or parts.port or 5432)


def _run_as(host: str) -> str:
    """PgBouncer refuses to run as root: the owner of the server's socket directory
    (which only it may enter, as with the embedded server), else `nobody`."""
    if host.startswith("/"):
        owner = pwd.getpwuid(Path(host).stat().st_uid).pw_name
        if owner != "root":
            return owner
    return "nobody"


def _quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


@dataclass
class PgBouncer:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def url_for(self, database_url: str) -> str:
        """The same database, user and password, through PgBouncer (over TCP, also when
        the server itself listens on a unix socket, as the embedded one does)."""
        parts = urlsplit(database_url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@127.0.0.1:{self.port}" if credentials else f"127.0.0.1:{self.port}"
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("host", "port")]
        return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query)))

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def _wait_listening(bouncer: PgBouncer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if bouncer.process.poll() is not None:
            raise RuntimeError(
                f"pgbouncer exited with {bouncer.process.returncode}:\n{bouncer.log_tail()}"
            )
        try:
            socket.create_connection(("127.0.0.1", bouncer.port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"pgbouncer not listening after {START_TIMEOUT}s:\n{bouncer.log_tail()}"
                ) from None
            time.sleep(0.05)  # another process's socket: nothing to await


@contextmanager
def running_pgbouncer(server_url: str) -> Iterator[PgBouncer]:
    """PgBouncer in transaction mode in front of the server of `server_url`."""
    if not os.access(PGBOUNCER, os.X_OK):
        raise RuntimeError(f"{PGBOUNCER} not found: run scripts/bootstrap.sh (apt pgbouncer)")
    server = urlsplit(server_url)
    host, port = _backend(server_url)
    workdir = Path(tempfile.mkdtemp(prefix="queue-pgbouncer-"))
    # run as another user when started as root (_run_as), which must read its files
    workdir.chmod(0o755)
    auth_file = workdir / "userlist.txt"
    user = unquote(server.username or "postgres")
    auth_file.write_text(f"{_quote(user)} {_quote(unquote(server.password or ''))}\n")
    listen_port = free_port()
    config = workdir / "pgbouncer.ini"
    config.write_text(
        CONFIG.format(
            host=host,
            port=port,
            listen_port=listen_port,
            auth_file=auth_file,
            pool_size=POOL_SIZE,
        )
    )
    for path in (auth_file, config):
        path.chmod(0o644)
    log = workdir / "pgbouncer.log"
    command = [PGBOUNCER, str(config)]
    if os.geteuid() == 0:
        command[1:1] = ["-u", _run_as(host)]
    with log.open("wb") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    bouncer = PgBouncer(port=listen_port, process=process, log=log)
    try:
        _wait_listening(bouncer)
        yield bouncer
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
