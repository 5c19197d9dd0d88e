"""`raxx-queue serve` with several workers: connections spread over all of them, a dead
worker replaced, a worker that cannot start ends the service, a taken port refused."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import time
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from raxx_queue.supervisor import Supervisor
from tests.support.process import (
    free_port,
    run_cli,
    running_service,
    service_env,
    wait_until,
    worker_pids,
)

LISTEN, ESTABLISHED = "0A", "01"


def tcp_sockets(port: int, state: str) -> dict[int, int]:
    """The local TCP sockets on `port` in `state` (/proc/net/tcp): inode -> receive
    queue, which for a listening socket is the connections waiting to be accepted
    (inode 0: a connection not accepted yet)."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rpartition(":")[2], 16)
        if local_port == port and fields[3] == state:
            found[int(fields[9])] = int(fields[4].partition(":")[2], 16)
    return found


def sockets_of(pid: int) -> set[int]:
    """Inodes of the sockets the process holds open."""
    held = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(FileNotFoundError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                held.add(int(target[8:-1]))
    return held


def listening_workers(pid: int, port: int) -> list[int]:
    """The workers of the service that accept on the port."""
    listeners = tcp_sockets(port, LISTEN).keys()
    return [w for w in worker_pids(pid) if w != pid and sockets_of(w) & listeners]


def settled_while_frozen(frozen: int, others: list[int], port: int, count: int) -> bool:
    """Every new connection is accepted by a running worker, or waits on a socket only
    the frozen worker listens on (a shared socket's queue is the others' to drain)."""
    established = tcp_sockets(port, ESTABLISHED).keys()
    theirs = set().union(*(sockets_of(w) for w in others))
    only_frozen = sockets_of(frozen) - theirs
    accepted = len(theirs & established)
    waiting = sum(q for inode, q in tcp_sockets(port, LISTEN).items() if inode in only_frozen)
    return accepted + waiting == count


def read_response(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        assert chunk, "connection closed before an answer"
        data += chunk
    return data


def connections_per_worker(
    pid: int, port: int, count: int = 64, *, one_busy: bool = False
) -> dict[int, int]:
    """Open `count` connections, have each answered; how many each worker holds.

    With `one_busy`, one worker is frozen while the connections arrive, as a worker
    that is busy or off the CPU when a burst comes: with one listening socket shared
    by the workers, the others accept them all (and serve all their requests); with
    a socket each, the frozen worker's share waits for it.
    """
    workers = worker_pids(pid)
    busy = workers[0] if one_busy else None
    if busy is not None:
        os.kill(busy, signal.SIGSTOP)
    try:
        conns = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
        if busy is not None:
            wait_until(lambda: settled_while_frozen(busy, workers[1:], port, count), 30, "accepted")
    finally:
        if busy is not None:
            os.kill(busy, signal.SIGCONT)
    try:
        for conn in conns:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: queue\r\n\r\n")
        assert all(read_response(c).startswith(b"HTTP/1.1 200") for c in conns)
        established = tcp_sockets(port, ESTABLISHED).keys()
        return {w: len(sockets_of(w) & established) for w in worker_pids(pid)}
    finally:
        for conn in conns:
            conn.close()


def both_serving(pid: int, port: int) -> None:
    """Until two workers listen and both have answered (each has started its app)."""
    wait_until(lambda: len(listening_workers(pid, port)) == 2, 30, "both workers listening")
    wait_until(
        lambda: min(connections_per_worker(pid, port, 16).values()) > 0, 30, "both answering"
    )


def test_connections_are_spread_over_both_workers_even_when_one_is_busy(clean_db: str) -> None:
    with running_service(clean_db, workers=2) as service:
        port = int(service.url.rpartition(":")[2])
        both_serving(service.process.pid, port)
        held = connections_per_worker(service.process.pid, port, one_busy=True)
    assert sum(held.values()) == 64
    # an even split is 32 each; fewer than 13 on one side has odds below one in a million
    assert min(held.values()) >= 13, held


def test_a_worker_that_dies_is_replaced(clean_db: str) -> None:
    with running_service(clean_db, workers=2) as service:
        port = int(service.url.rpartition(":")[2])
        pid = service.process.pid
        both_serving(pid, port)
        first, second = worker_pids(pid)
        os.kill(first, signal.SIGKILL)
        wait_until(lambda: first not in worker_pids(pid), 30, "the dead worker reaped")
        both_serving(pid, port)
        assert second in worker_pids(pid)
        assert len(worker_pids(pid)) == 2
    assert service.process.returncode == 0


def exits_at_once(_options: dict[str, Any], _ready: Event) -> None:
    """A worker that fails before it accepts a connection (a spawned process's target)."""
    sys.exit(3)


def test_a_worker_that_cannot_start_ends_the_service() -> None:
    supervisor = Supervisor(2, {"host": "127.0.0.1", "port": free_port()}, target=exits_at_once)
    handlers = [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)]
    started = time.monotonic()
    assert supervisor.run() == 1
    assert time.monotonic() - started < 30
    # the signal handlers it installed are gone with it
    assert [signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)] == handlers


def test_a_port_already_taken_is_refused(clean_db: str) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))  # where the service would bind
        taken.listen()
        port = taken.getsockname()[1]
        env = service_env(clean_db, port, WEB_CONCURRENCY="2")
        done = run_cli("serve", env=env, timeout=60)
    assert done.returncode == 1
    assert '"event":"port_in_use"' in done.stderr.replace(" ", "")
