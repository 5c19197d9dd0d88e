"""A worker process of `raxx-queue serve` with several workers: uvicorn's server on the
connections its supervisor hands it (supervisor.py, connection_dealer.py).

The worker binds nothing. It reads accepted sockets from its end of the channel, a Unix
socket pair (SCM_RIGHTS), and serves each as if it had accepted it; it tells the
supervisor once it serves. When the supervisor is gone (its end closed), no connection
can reach it any more, and it stops as on SIGTERM: it finishes what it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from multiprocessing.synchronize import Event
from typing import Any

import structlog
import uvicorn

log = structlog.get_logger(__name__)

APP_FACTORY = "raxx_queue.app:create_app_from_env"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _exit_cleanly(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def exit_cleanly_after_shutdown() -> None:
    """uvicorn re-raises the signal it handled once its shutdown is complete: a
    finished graceful shutdown is a clean exit, not a death by signal."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _exit_cleanly)


class WorkerServer(uvicorn.Server):
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
                task.add_done_callback(self._adopted)

    def _adopted(self, task: asyncio.Task[Any]) -> None:
        self._adopting.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # the client left before it was served: nothing to answer
            log.debug("connection_not_adopted", error_type=type(task.exception()).__name__)


def serve_worker(options: dict[str, Any], ready: Event, channel: socket.socket) -> None:
    """One worker process (spawned): the app from the environment, on the connections
    the supervisor deals it."""
    exit_cleanly_after_shutdown()
    config = uvicorn.Config(APP_FACTORY, factory=True, **options)
    WorkerServer(config, ready, channel).run(sockets=[])
