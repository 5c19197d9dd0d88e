"""`raxx-queue serve` with several workers: connections dealt to them in turn, a stuck
worker passed over, a dead worker replaced, a worker that cannot start ends the service,
a taken port refused, the workers' metric files removed with the service."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Iterator
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, NamedTuple

from raxx_queue.supervisor import Supervisor
from tests.support.process import (
    RunningService,
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


def read_response(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        assert chunk, "connection closed before an answer"
        data += chunk
    return data


def held_per_worker(pid: int, port: int) -> dict[int, int]:
    """How many of the port's established connections each worker holds."""
    established = tcp_sockets(port, ESTABLISHED).keys()
    return {w: len(sockets_of(w) & established) for w in worker_pids(pid)}


def held_by_supervisor(pid: int, port: int) -> set[int]:
    """The port's established connections the supervisor itself holds (accepted and
    not yet handed to a worker)."""
    return sockets_of(pid) & tcp_sockets(port, ESTABLISHED).keys()


def all_dealt(pid: int, port: int) -> bool:
    """Whether the supervisor has accepted every connection made to the port and handed
    each on: none waits in the listening socket's queue, and it holds none itself."""
    unaccepted = sum(tcp_sockets(port, LISTEN).values())
    return unaccepted == 0 and not held_by_supervisor(pid, port)


def open_connections(port: int, count: int) -> list[socket.socket]:
    return [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]


def answered(conn: socket.socket) -> bool:
    """Whether an answer waits on the connection (read only once it is all there)."""
    readable, _, _ = select.select([conn], [], [], 0)
    return bool(readable) and conn.recv(4096, socket.MSG_PEEK).find(b"\r\n\r\n") >= 0


def connections_per_worker(pid: int, port: int, count: int) -> dict[int, int]:
    """Open `count` connections, have each answered; how many each worker holds."""
    conns = open_connections(port, count)
    try:
        for conn in conns:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: queue\r\n\r\n")
        assert all(read_response(c).startswith(b"HTTP/1.1 200") for c in conns)
        return held_per_worker(pid, port)
    finally:
        for conn in conns:
            conn.close()


def both_serving(pid: int, port: int) -> None:
    """Until both workers have answered (each has started its app)."""
    wait_until(
        lambda: (
            min(connections_per_worker(pid, port, 16).values(), default=0) > 0
            and len(worker_pids(pid)) == 2
        ),
        30,
        "both answering",
    )


class TwoWorkers(NamedTuple):
    service: RunningService
    pid: int  # the supervisor's
    port: int


@contextlib.contextmanager
def two_workers(clean_db: str) -> Iterator[TwoWorkers]:
    """`raxx-queue serve` with two workers, both answering."""
    with running_service(clean_db, workers=2) as service:
        port = int(service.url.rpartition(":")[2])
        both_serving(service.process.pid, port)
        yield TwoWorkers(service, service.process.pid, port)


def test_connections_are_dealt_to_the_workers_in_turn(clean_db: str) -> None:
    with two_workers(clean_db) as (_, pid, port):
        # a small pool (Raptor's, a router's) is split evenly, not by a hash's luck
        for count in (2, 4, 8, 64):
            held = connections_per_worker(pid, port, count)
            assert sorted(held.values()) == [count // 2, count // 2], (count, held)
        # the supervisor only accepts: it holds none of them
        assert not held_by_supervisor(pid, port)


def test_a_stuck_worker_is_passed_over_once_its_channel_is_full(clean_db: str) -> None:
    """While one worker is frozen (busy, off the CPU), the other serves new connections
    but for the few that wait in the frozen one's channel, served once it resumes."""
    count = 128
    with two_workers(clean_db) as (_, pid, port):
        stuck, running = worker_pids(pid)
        os.kill(stuck, signal.SIGSTOP)
        try:
            conns = open_connections(port, count)
            for conn in conns:
                conn.sendall(b"GET /health HTTP/1.1\r\nHost: queue\r\n\r\n")
            # once every connection is dealt, the running worker answers all it was
            # dealt; the rest wait for the stuck one (before the first is dealt, both
            # counts are 0)
            wait_until(
                lambda: (
                    all_dealt(pid, port)
                    and 0 < sum(answered(c) for c in conns) == held_per_worker(pid, port)[running]
                ),
                30,
                "the running worker's answers",
            )
            waiting = [c for c in conns if not answered(c)]
        finally:
            os.kill(stuck, signal.SIGCONT)
        try:
            # the frozen worker's channel held some (CHANNEL_BUFFER_BYTES), not its half
            assert 0 < len(waiting) < count // 2, len(waiting)
            assert all(read_response(c).startswith(b"HTTP/1.1 200") for c in waiting)
        finally:
            for conn in conns:
                conn.close()


def test_a_worker_that_dies_is_replaced(clean_db: str) -> None:
    with two_workers(clean_db) as (service, pid, port):
        first, second = worker_pids(pid)
        os.kill(first, signal.SIGKILL)
        # replaced once the supervisor has reaped it: until then its channel may still be
        # open (a process's memory is released before its files), and a connection dealt
        # to it in those milliseconds is reset with it, as one in a dying worker's own
        # accept queue was
        wait_until(
            lambda: first not in worker_pids(pid) and len(worker_pids(pid)) == 2,
            30,
            "the dead worker replaced",
        )
        both_serving(pid, port)
        assert second in worker_pids(pid)
        assert len(worker_pids(pid)) == 2
    assert service.process.returncode == 0


def test_workers_stop_when_the_supervisor_is_gone(clean_db: str) -> None:
    """A supervisor killed outright deals no more connections: its workers finish what
    they serve and exit rather than linger without any."""
    with two_workers(clean_db) as (_, pid, _):
        workers = worker_pids(pid)
        os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: not any(Path(f"/proc/{w}").exists() and not zombie(w) for w in workers),
            30,
            "the workers gone",
        )


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def exits_at_once(_options: dict[str, Any], _ready: Event, _channel: socket.socket) -> None:
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


def test_the_workers_metric_files_go_with_the_service(clean_db: str, tmp_path: Path) -> None:
    """The directory the service makes for its workers' metric files is removed when it
    stops; a directory the operator named is theirs, and stays."""
    scratch, named = tmp_path / "tmp", tmp_path / "named"
    scratch.mkdir()
    named.mkdir()
    with running_service(clean_db, workers=2, TMPDIR=str(scratch)) as service:
        both_serving(service.process.pid, int(service.url.rpartition(":")[2]))
        (made,) = scratch.glob("queue-metrics-*")
        assert any(made.glob("*.db"))
    assert service.process.returncode == 0
    assert not made.exists()
    with running_service(clean_db, workers=2, PROMETHEUS_MULTIPROC_DIR=str(named)) as service:
        both_serving(service.process.pid, int(service.url.rpartition(":")[2]))
    assert service.process.returncode == 0
    assert any(named.glob("*.db"))
