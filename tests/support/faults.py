"""Faults to inject: a TCP proxy to Postgres that can be cut, and terminated backends."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

from tests.support.database import Conn

TERMINATE_OTHER_BACKENDS = """
SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
  FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid() AND pid <> ALL($1::int[])
"""


async def terminate_backends(conn: Conn, spare: tuple[Conn, ...] = ()) -> int:
    """Terminate every session of conn's database (the test's own database only) but
    conn's and those of `spare`; returns how many."""
    pids = [other.get_server_pid() for other in spare]
    count: int = await conn.fetchval(TERMINATE_OTHER_BACKENDS, pids)
    return count


def postgres_address(url: str) -> tuple[str, str | int]:
    """("unix", socket path) or (host, port) of a Postgres URL."""
    parts = urlsplit(url)
    socket_dir = parse_qs(parts.query).get("host", [None])[0]
    port = parts.port or 5432
    if socket_dir:
        return "unix", str(Path(socket_dir) / f".s.PGSQL.{port}")
    return parts.hostname or "127.0.0.1", port


def via_port(url: str, port: int) -> str:
    """The same database reached over TCP on 127.0.0.1:port (through a proxy)."""
    parts = urlsplit(url)
    user = parts.username or "postgres"
    return urlunsplit(("postgresql", f"{user}@127.0.0.1:{port}", parts.path, "", ""))


class CuttableProxy:
    """A TCP proxy to Postgres on 127.0.0.1:port that can drop every connection and refuse
    new ones (`cut`), then accept again (`restore`): the database vanishing from the
    network and coming back, without touching the shared server."""

    def __init__(self, port: int, target: tuple[str, str | int]) -> None:
        self.port = port
        self.target = target
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            # after the connections are gone: from 3.12 this waits for them
            await server.wait_closed()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if self.target[0] == "unix":
            return await asyncio.open_unix_connection(str(self.target[1]))
        return await asyncio.open_connection(str(self.target[0]), int(self.target[1]))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            up_reader, up_writer = await self._open_upstream()
            self._writers.add(up_writer)
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (OSError, asyncio.CancelledError):
            writer.transport.abort()
        finally:
            self._tasks.discard(task)

    async def __aenter__(self) -> CuttableProxy:
        await self.restore()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.cut()
