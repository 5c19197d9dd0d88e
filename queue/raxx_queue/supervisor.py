"""Several serving processes on one port, each accepting on its own socket.

uvicorn's multi-worker mode binds one listening socket and shares it: every new
connection goes to whichever worker takes it first, and a burst of keep-alive
connections (a load balancer's or Raptor's pool) lands almost whole on one of them
(measured: 30 of 32 connections on one of two workers, which then had a core's work
while the other idled). Here each worker binds its own socket to the port with
SO_REUSEPORT, and the kernel spreads connections over the sockets by a hash of their
addresses.

The supervisor forwards SIGTERM and SIGINT (each worker then finishes its requests in
flight, as a single process does), replaces a worker that dies while serving, and
gives up, exit 1, when one dies before it accepted connections: a worker that
cannot start would only fail again.
"""

from __future__ import annotations

import contextlib
import errno
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
_spawn = multiprocessing.get_context("spawn")


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on the port (probed without SO_REUSEPORT, so another
    Queue supervisor holding it counts as taken too)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def listening_socket(host: str, port: int) -> socket.socket:
    """This worker's own socket on the shared port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
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
    """uvicorn's server, telling the supervisor once it accepts connections."""

    def __init__(self, config: uvicorn.Config, ready: Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._ready.set()


def serve_worker(options: dict[str, Any], ready: Event) -> None:
    """One worker process (spawned): the app from the environment, on its own socket."""
    exit_cleanly_after_shutdown()
    sock = listening_socket(options["host"], options["port"])
    config = uvicorn.Config(APP_FACTORY, factory=True, **options)
    _Server(config, ready).run(sockets=[sock])


Target = Callable[[dict[str, Any], Event], None]


@dataclass
class _Worker:
    process: BaseProcess
    ready: Event


class Supervisor:
    """Starts `workers` serving processes and keeps that many running until told to stop."""

    def __init__(
        self, workers: int, options: dict[str, Any], target: Target = serve_worker
    ) -> None:
        self._count = workers
        self._options = options
        self._target = target
        self._stop = threading.Event()
        self._workers: list[_Worker] = []

    def request_stop(self, _signum: int = 0, _frame: object = None) -> None:
        self._stop.set()

    def run(self) -> int:
        host, port = self._options["host"], self._options["port"]
        if not port_is_free(host, port):
            log.error("port_in_use", port=port)
            return 1
        previous = {sig: signal.signal(sig, self.request_stop) for sig in STOP_SIGNALS}
        try:
            self._workers = [self._start() for _ in range(self._count)]
            log.info("workers_started", workers=self._count)
            failed = False
            while not failed and not self._stop.wait(0.5):
                failed = self._replace_dead()
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if failed else 0

    def _start(self) -> _Worker:
        ready = _spawn.Event()
        process = _spawn.Process(target=self._target, args=(self._options, ready))
        process.start()
        return _Worker(process, ready)

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
        log.info("workers_stopped")
