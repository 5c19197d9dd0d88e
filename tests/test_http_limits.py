"""The server's limits on slow and oversized requests (finding 11), over real sockets:
`raxx-queue serve` as production runs it, and uvicorn in process with the same protocol
and shorter deadlines for the body (the serve path's are the router's 30 seconds)."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Iterator

import pytest
import uvicorn

from raxx_queue.app import create_app
from raxx_queue.cli import _uvicorn_options
from raxx_queue.http_protocol import (
    HEAD_TIMEOUT_SECONDS,
    KEEP_ALIVE_SECONDS,
    BoundedHttpToolsProtocol,
    HeadWithBody,
)
from tests.conftest import make_settings
from tests.support.process import RunningService, free_port, running_service

# every wait on the server is bounded: three times its deadline
CLOSE_BOUND = 3 * HEAD_TIMEOUT_SECONDS


@pytest.fixture(scope="module")
def service(database_url: str) -> Iterator[RunningService]:
    with running_service(database_url) as running:
        yield running


def _connect(service: RunningService) -> socket.socket:
    port = int(service.url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=CLOSE_BOUND)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes (bounded by the socket's timeout)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _head(extra: bytes = b"") -> bytes:
    return b"GET /health HTTP/1.1\r\nHost: queue\r\nConnection: close\r\n" + extra + b"\r\n"


def test_the_serve_path_uses_the_bounded_protocol_and_the_routers_keep_alive() -> None:
    options = _uvicorn_options(make_settings(None))
    assert options["http"] is BoundedHttpToolsProtocol
    assert options["timeout_keep_alive"] == KEEP_ALIVE_SECONDS


def test_an_oversized_head_is_refused_with_431(service: RunningService) -> None:
    with _connect(service) as sock:
        sock.sendall(_head(b"X-Padding: " + b"a" * 40_000 + b"\r\n"))
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:80]
    assert b'"HEADERS_TOO_LARGE"' in answer


def test_a_4_mb_header_is_cut_off_early(service: RunningService) -> None:
    with _connect(service) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: queue\r\nX-Padding: ")
        sent = 0
        try:
            while sent < 4 * 1024 * 1024:
                sock.sendall(b"a" * 65536)
                sent += 65536
            answer = _read_all(sock)
        except (BrokenPipeError, ConnectionResetError):
            answer = b"reset"
    # the server stopped reading long before 4 MB: refused, or reset while we still wrote
    assert answer.startswith(b"HTTP/1.1 431 ") or answer == b"reset"
    with _connect(service) as sock:  # and it still serves
        sock.sendall(_head())
        assert _read_all(sock).startswith(b"HTTP/1.1 200 ")


def test_a_head_of_normal_size_is_served(service: RunningService) -> None:
    with _connect(service) as sock:
        sock.sendall(_head(b"X-Padding: " + b"a" * 8000 + b"\r\n"))
        assert _read_all(sock).startswith(b"HTTP/1.1 200 ")


def test_slow_and_silent_clients_are_closed(service: RunningService) -> None:
    """Twenty connections: ten send nothing, ten trickle a head that never ends. The
    server closes every one (recv returns b"" rather than timing out)."""
    sockets = [_connect(service) for _ in range(20)]
    try:
        for sock in sockets[10:]:
            sock.sendall(b"POST /api/v1/billing/webhook HTTP/1.1\r\nHost: queue\r\n")
        for sock in sockets:
            assert _read_all(sock) == b""
    finally:
        for sock in sockets:
            sock.close()


class QuickDeadlines(BoundedHttpToolsProtocol):
    head_timeout = 0.5
    body_timeout = 0.5


@pytest.fixture
async def quick_server(clean_db: str) -> AsyncIterator[int]:
    """uvicorn on a real socket with the bounded protocol and half-second deadlines."""
    port = free_port()
    app = create_app(make_settings(clean_db))
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=QuickDeadlines, log_config=None, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while not server.started:
            await asyncio.sleep(0.01)  # uvicorn has no started event to await
    yield port
    server.should_exit = True
    await asyncio.wait_for(task, 30)


async def test_a_body_that_does_not_arrive_in_time_is_closed(quick_server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", quick_server)
    writer.write(
        b"POST /api/v1/billing/webhook HTTP/1.1\r\nHost: queue\r\n"
        b'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"id":'
    )
    await writer.drain()
    async with asyncio.timeout(CLOSE_BOUND):
        answer = await reader.read()
    writer.close()
    # closed without an answer: the request never completed
    assert answer == b""


async def test_keep_alive_requests_each_get_their_own_head_deadline(quick_server: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", quick_server)
    for _ in range(2):
        writer.write(b"GET /health HTTP/1.1\r\nHost: queue\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(CLOSE_BOUND):
            status = await reader.readline()
            assert status.startswith(b"HTTP/1.1 200 ")
            length = 0
            while (line := await reader.readline()) != b"\r\n":
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
    writer.write(b"GET /health HTTP/1.1\r\n")  # the third head never ends
    await writer.drain()
    async with asyncio.timeout(CLOSE_BOUND):
        assert await reader.read() == b""
    writer.close()


class _Recording:
    """A transport that records each write (the system calls a response costs)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True


def test_a_response_head_leaves_with_its_body_in_one_write() -> None:
    recording = _Recording()
    responses = HeadWithBody(recording)  # type: ignore[arg-type]
    responses.expect_head()
    responses.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # interim: at once
    responses.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert recording.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    responses.write(b"{}")
    assert recording.writes[1:] == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    # a response with no body write (HEAD) leaves at its end, or at close
    responses.expect_head()
    responses.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    responses.close()
    assert recording.writes[2:] == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"]
    assert recording.closed


def test_pipelined_requests_head_included_are_all_answered_in_order(
    service: RunningService,
) -> None:
    with _connect(service) as sock:
        sock.sendall(
            b"GET /health HTTP/1.1\r\nHost: queue\r\n\r\n"
            b"HEAD /health HTTP/1.1\r\nHost: queue\r\n\r\n"
            b"GET /nowhere HTTP/1.1\r\nHost: queue\r\nConnection: close\r\n\r\n"
        )
        answer = _read_all(sock)
    # (a body ends without a line break: the next status line follows it directly)
    statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert len(statuses) == 3, answer
    assert (statuses[0], statuses[2]) == (b"200", b"404")
    assert answer.count(b'"status"') == 1  # the HEAD answer carries no body


def test_a_client_expecting_100_continue_gets_it_before_sending_the_body(
    service: RunningService,
) -> None:
    body = b'{"id": "evt_1"}'
    with _connect(service) as sock:
        sock.sendall(
            b"POST /api/v1/billing/webhook HTTP/1.1\r\nHost: queue\r\nConnection: close\r\n"
            b"Expect: 100-continue\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n"
        )
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(body)
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:80]
    assert b'"code":"INVALID_SIGNATURE"' in answer
