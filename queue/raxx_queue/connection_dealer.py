"""How the supervisor of several workers shares the port's connections among them.

The supervisor holds the port's one listening socket; a thread accepts and deals each
connection to the next worker that can take it (Connections), handing the accepted
socket over that worker's channel, a Unix socket pair (SCM_RIGHTS). A worker not yet
serving, dead, or with its channel full (frozen or swamped) is passed over for the
next, so a stuck worker is dealt no more connections while it is stuck (about 45 wait
in its channel). Dealt in turn, a small pool (a router's, Raptor's) is split evenly,
which a socket per worker with SO_REUSEPORT, split by a hash, was not
(docs/architecture.md).
"""

from __future__ import annotations

import array
import errno
import itertools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event

import structlog

log = structlog.get_logger(__name__)

BACKLOG = 2048  # uvicorn's default
# How often the accepting thread looks whether it should stop, while no one connects.
ACCEPT_POLL_SECONDS = 0.25
# How long an accepted connection waits for a worker to take it (none serving: all
# starting, or all stuck) before it is closed.
DEAL_WAIT_SECONDS = 10.0
DEAL_RETRY_SECONDS = 0.005
# The send buffer of the supervisor's end of a worker's channel: a handed-over connection
# takes about 700 bytes of it until the worker takes it, and the kernel doubles the
# figure, so about 45 wait for a worker that is stuck before it is passed over. Fewer,
# and a burst of connections (a pool opening 64 at once) overflows a worker that is
# busy for a moment, and the other gets most of them.
CHANNEL_BUFFER_BYTES = 16384


def listening_socket(host: str, port: int) -> socket.socket | None:
    """The service's one listening socket; None when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        if error.errno == errno.EADDRINUSE:
            return None
        raise
    sock.listen(BACKLOG)
    return sock


def open_channel() -> tuple[socket.socket, socket.socket]:
    """A worker's channel: (the supervisor's end, the worker's end)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHANNEL_BUFFER_BYTES)
    return ours, theirs


@dataclass
class Worker:
    process: BaseProcess
    ready: Event
    # the supervisor's end of the worker's channel
    channel: socket.socket

    def take(self, conn: socket.socket) -> bool:
        """Hand the connection over; False if the worker cannot take it now."""
        if not self.ready.is_set():
            return False
        # sendmsg, not socket.send_fds: before Python 3.12 that drops the flags, and a
        # full channel would block the accepting thread
        rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [conn.fileno()]))
        try:
            self.channel.sendmsg([b"c"], [rights], socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL)
        except OSError:  # dead (its end closed), or its channel full: stuck or swamped
            return False
        return True


class Connections:
    """The accepting thread: each connection to the next worker that takes it."""

    def __init__(
        self,
        listener: socket.socket,
        workers: Callable[[], list[Worker]],
        stop: threading.Event,
        lock: threading.Lock,
    ) -> None:
        self._listener = listener
        self._workers = workers
        self._stop = stop
        # held while a worker's channel is used, so that it is not closed meanwhile
        self._lock = lock
        self._turn = itertools.count()
        self._thread = threading.Thread(target=self._run, name="connections", daemon=True)

    def start(self) -> None:
        self._listener.settimeout(ACCEPT_POLL_SECONDS)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError as error:  # out of descriptors, say: the backlog waits
                log.warning("accept_failed", errno=error.errno)
                self._stop.wait(DEAL_RETRY_SECONDS)
                continue
            with conn:  # handed over or not, the supervisor's copy closes
                if not self._deal(conn):
                    log.warning("connection_refused_no_worker")

    def _deal(self, conn: socket.socket) -> bool:
        deadline = time.monotonic() + DEAL_WAIT_SECONDS
        while not self._stop.is_set():
            workers = self._workers()
            first = next(self._turn)
            for offset in range(len(workers)):
                with self._lock:
                    if workers[(first + offset) % len(workers)].take(conn):
                        return True
            if time.monotonic() >= deadline:
                return False
            self._stop.wait(DEAL_RETRY_SECONDS)
        return False
