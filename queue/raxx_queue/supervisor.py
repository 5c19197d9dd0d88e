"""Several serving processes on one port: the supervisor accepts, the workers serve.

uvicorn's multi-worker mode binds one listening socket and shares it: every new
connection goes to whichever worker takes it first, and a burst of keep-alive
connections (a load balancer's or Raptor's pool) lands almost whole on one of them
(measured: 30 of 32 connections on one of two workers, which then had a core's work
while the other idled). A socket per worker with SO_REUSEPORT spreads connections by a
hash of their addresses, which is even only over many of them: 8 connections to two
workers were split 7 to 1 in three tries of eight, 4 connections 3 to 1 in five of
eight (docs/performance.md), and one worker then does most of the work.

Here the supervisor holds the port's one listening socket, accepts, and deals the
connections to the workers in turn (Connections). It hands each accepted socket to its
worker over that worker's own Unix socket pair (SCM_RIGHTS), and the worker serves it
as if it had accepted it (_Server); requests never pass through the supervisor. A
worker not yet serving, dead, or with its channel full (frozen or swamped) is passed
over for the next, so a stuck worker is dealt no more connections while it is stuck
(about 45 wait in its channel).

The supervisor forwards SIGTERM and SIGINT (each worker then finishes its requests in
flight, as a single process does), replaces a worker that dies while serving, and
gives up, exit 1, when one dies before it started serving: a worker that cannot start
would only fail again.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import errno
import itertools
import multiprocessing
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from typing import Any

import structlog
import uvicorn

log = structlog.get_logger(__name__)

APP_FACTORY = "raxx_queue.app:create_app_from_env"
BACKLOG = 2048  # uvicorn's default
# How long workers get to finish after SIGTERM, beyond their own graceful-shutdown time.
STOP_MARGIN_SECONDS = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
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
_spawn = multiprocessing.get_context("spawn")


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


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def exit_cleanly_after_shutdown() -> None:
    """uvicorn re-raises the signal it handled once its shutdown is complete: a
    finished graceful shutdown is a clean exit, not a death by signal."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _exit_cleanly)


class _Server(uvicorn.Server):
    """uvicorn's server on the connections the supervisor hands over its channel; tells
    the supervisor once it serves."""

    def __init__(self, config: uvicorn.Config, ready: Event, channel: socket.socket) -> None:
        super().__init__(config)
        self._ready = ready
        self._channel = channel
        self._adopting: set[asyncio.Task[Any]] = set()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # the app's start-up; no listening socket
        if not self.started:
            return
        self._channel.setblocking(False)
        asyncio.get_running_loop().add_reader(self._channel.fileno(), self._receive)
        self._ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # no new connection from here on; those handed over and not yet taken close
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self._channel.fileno())
        self._channel.close()
        await super().shutdown(sockets)

    def _protocol(self) -> asyncio.Protocol:
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        return protocol

    def _receive(self) -> None:
        """Serve every connection waiting in the channel."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self._channel, 1, 1)
            except BlockingIOError:
                return
            except OSError:
                data, fds = b"", []
            if not data:  # the supervisor is gone: no connection will come, so stop
                loop.remove_reader(self._channel.fileno())
                self.should_exit = True
                return
            for fd in fds:
                task = loop.create_task(
                    loop.connect_accepted_socket(self._protocol, socket.socket(fileno=fd))
                )
                self._adopting.add(task)
                task.add_done_callback(_adopted(self._adopting))


def _adopted(tasks: set[asyncio.Task[Any]]) -> Callable[[asyncio.Task[Any]], None]:
    def done(task: asyncio.Task[Any]) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the client left before it was served: nothing to answer
            log.debug("connection_not_adopted", error_type=type(task.exception()).__name__)

    return done


def serve_worker(options: dict[str, Any], ready: Event, channel: socket.socket) -> None:
    """One worker process (spawned): the app from the environment, on the connections
    the supervisor deals it."""
    exit_cleanly_after_shutdown()
    config = uvicorn.Config(APP_FACTORY, factory=True, **options)
    _Server(config, ready, channel).run(sockets=[])


Target = Callable[[dict[str, Any], Event, socket.socket], None]


@dataclass
class _Worker:
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
        workers: Callable[[], list[_Worker]],
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


class Supervisor:
    """Starts `workers` serving processes and keeps that many running until told to stop."""

    def __init__(
        self, workers: int, options: dict[str, Any], target: Target = serve_worker
    ) -> None:
        self._count = workers
        self._options = options
        self._target = target
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []

    def request_stop(self, _signum: int = 0, _frame: object = None) -> None:
        self._stop.set()

    def run(self) -> int:
        listener = listening_socket(self._options["host"], self._options["port"])
        if listener is None:
            log.error("port_in_use", port=self._options["port"])
            return 1
        previous = {sig: signal.signal(sig, self.request_stop) for sig in STOP_SIGNALS}
        connections = Connections(listener, lambda: list(self._workers), self._stop, self._lock)
        try:
            self._workers = [self._start() for _ in range(self._count)]
            connections.start()
            log.info("workers_started", workers=self._count)
            failed = False
            while not failed and not self._stop.wait(0.5):
                failed = self._replace_dead()
            self._stop.set()
            connections.join()
            listener.close()  # new connections are refused while the workers finish
            self._stop_all()
        finally:
            listener.close()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if failed else 0

    def _start(self) -> _Worker:
        ready = _spawn.Event()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CHANNEL_BUFFER_BYTES)
        process = _spawn.Process(target=self._target, args=(self._options, ready, theirs))
        process.start()
        theirs.close()  # the worker has its own copy
        return _Worker(process, ready, ours)

    def _replace_dead(self) -> bool:
        """Replace workers that died while serving; True when one died starting."""
        for index, worker in enumerate(self._workers):
            if worker.process.is_alive() or self._stop.is_set():
                continue
            if not worker.ready.is_set():
                log.error("worker_failed_to_start", exit_code=worker.process.exitcode)
                return True
            log.error("worker_died", exit_code=worker.process.exitcode)
            self._workers[index] = self._start()
            with self._lock:
                worker.channel.close()
        return False

    def _stop_all(self) -> None:
        for worker in self._workers:
            if worker.process.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    worker.process.terminate()  # SIGTERM: the worker's graceful shutdown
        grace = float(self._options.get("timeout_graceful_shutdown") or 0) + STOP_MARGIN_SECONDS
        deadline = time.monotonic() + grace
        for worker in self._workers:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.error("worker_killed_after_grace")
                worker.process.kill()
                worker.process.join()
            worker.channel.close()
        log.info("workers_stopped")
