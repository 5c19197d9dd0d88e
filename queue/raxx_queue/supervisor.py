"""Several serving processes on one port: the supervisor accepts, the workers serve.

The supervisor holds the port's one listening socket and deals the connections to the
workers in turn (connection_dealer.py); each worker serves the connections handed to it
(serving_worker.py), so requests never pass through the supervisor. uvicorn's
multi-worker mode (one shared listening socket) left a burst of keep-alive connections
almost whole on one worker, 30 of 32; a socket per worker with SO_REUSEPORT split small
pools by a hash, 8 connections 7 to 1 in three tries of eight (docs/performance.md).

The supervisor forwards SIGTERM and SIGINT (it stops accepting; each worker then
finishes its requests in flight, as a single process does), replaces a worker that dies
while serving, and gives up, exit 1, when one dies before it started serving: a worker
that cannot start would only fail again.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from socket import socket
from typing import Any

import structlog

from raxx_queue.connection_dealer import Connections, Worker, listening_socket, open_channel
from raxx_queue.serving_worker import STOP_SIGNALS, serve_worker

log = structlog.get_logger(__name__)

# How long workers get to finish after SIGTERM, beyond their own graceful-shutdown time.
STOP_MARGIN_SECONDS = 5.0
_spawn = multiprocessing.get_context("spawn")

Target = Callable[[dict[str, Any], Event, socket], None]


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
        self._workers: list[Worker] = []

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

    def _start(self) -> Worker:
        ready = _spawn.Event()
        ours, theirs = open_channel()
        process = _spawn.Process(target=self._target, args=(self._options, ready, theirs))
        process.start()
        theirs.close()  # the worker has its own copy
        return Worker(process, ready, ours)

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
