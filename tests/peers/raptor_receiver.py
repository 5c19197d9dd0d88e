"""A real HTTP server on 127.0.0.1 standing in for Raptor's mirror endpoint.

    with RaptorReceiver(token="raptor-token") as raptor:
        settings = ...(raptor_mirror_url=raptor.url, raptor_mirror_token="raptor-token")
        raptor.fail(500, times=2)                    # next two pushes answer 500
        ...
        pushes = await raptor.await_for(lambda pushes: any(p.accepted for p in pushes))

Like Raptor it answers 401 to a wrong bearer token, and, given a `SignatureCheck`, to a
push whose Standard Webhooks signature the reference library does not verify; it
applies a row only when its `version` is newer than the one it holds (`receiver.rows`).
It can be told to answer an error status (with a Retry-After), to hang (hold requests
until `release()`, `recover()` or `stop()`), and to recover. Waiting is on a
`threading.Condition`, never a sleep.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from tests.peers.raptor_push import Push, _Fault
from tests.peers.raptor_signatures import SignatureCheck

__all__ = ["DEFAULT_TOKEN", "MIRROR_PATH", "Push", "RaptorReceiver", "SignatureCheck"]

MIRROR_PATH = "/internal/billing/mirror"
DEFAULT_TOKEN = "raptor-mirror-test-token"
Predicate = Callable[[list["Push"]], bool]


class _BurstServer(ThreadingHTTPServer):
    """A dispatcher opens up to 32 connections at once; the default backlog is 5."""

    request_queue_size = 128


class RaptorReceiver:
    """Threaded HTTP receiver on a random free port of 127.0.0.1; a context manager."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        hang_limit: float = 30.0,
        signatures: SignatureCheck | None = None,
    ) -> None:
        self.token = token
        self.signatures = signatures  # None: signatures are recorded, not checked
        self._hang_limit = hang_limit  # a held request gives up after this, so threads end
        self._cond = threading.Condition()
        self._pushes: list[Push] = []
        self._rows: dict[str, dict[str, Any]] = {}
        self._faults: list[_Fault] = []
        self._released = 0  # generation counter: held requests wait for it to move
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Bind 127.0.0.1:0 and serve in a background thread."""
        self._server = _BurstServer(("127.0.0.1", 0), _handler_class(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="raptor-receiver",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held requests, stop serving and close the socket."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port."""
        if self._server is None:
            raise RuntimeError("receiver not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT/internal/billing/mirror`."""
        return f"http://127.0.0.1:{self.port}{MIRROR_PATH}"

    # --- behaviour ---------------------------------------------------------------------

    def fail(
        self, status: int = 500, *, times: int | None = None, retry_after: str | None = None
    ) -> None:
        """Answer `status` (with a Retry-After) to the next `times` pushes (None: until
        `recover()`)."""
        with self._cond:
            self._faults.append(_Fault("fail", status, times, retry_after))

    def hang(self, *, times: int | None = None) -> None:
        """Hold the next `times` pushes (None: all until `recover()`) until released."""
        with self._cond:
            self._faults.append(_Fault("hang", 0, times))

    def release(self) -> None:
        """Let the requests held so far go on (they are then answered normally)."""
        with self._cond:
            self._released += 1
            self._cond.notify_all()

    def recover(self) -> None:
        """Stop failing and hanging; release what is held."""
        with self._cond:
            self._faults.clear()
            self._released += 1
            self._cond.notify_all()

    # --- inspection --------------------------------------------------------------------

    @property
    def pushes(self) -> list[Push]:
        """Every request so far, in arrival order (a snapshot)."""
        with self._cond:
            return list(self._pushes)

    @property
    def accepted(self) -> list[Push]:
        """Pushes answered 2xx."""
        return [push for push in self.pushes if push.accepted]

    @property
    def rows(self) -> dict[str, dict[str, Any]]:
        """The newest applied row per `queue_customer_id` (what Raptor's paywall would read)."""
        with self._cond:
            return {key: dict(row) for key, row in self._rows.items()}

    def forget(self, queue_customer_id: str) -> None:
        """Lose a row, as a restore from an old backup would."""
        with self._cond:
            self._rows.pop(queue_customer_id, None)

    def overwrite(self, queue_customer_id: str, **fields: Any) -> None:
        """Change a held row in place (a bug, a manual edit)."""
        with self._cond:
            self._rows[queue_customer_id] = {**self._rows[queue_customer_id], **fields}

    def wait_for(self, predicate: Predicate, timeout: float = 5.0) -> list[Push]:
        """Block until `predicate(pushes)` holds; return the pushes. TimeoutError otherwise."""
        with self._cond:
            if not self._cond.wait_for(lambda: predicate(list(self._pushes)), timeout):
                seen = [(push.path, push.status) for push in self._pushes]
                raise TimeoutError(f"Raptor receiver: condition not met in {timeout}s; saw {seen}")
            return list(self._pushes)

    async def await_for(self, predicate: Predicate, timeout: float = 5.0) -> list[Push]:
        """`wait_for` without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for, predicate, timeout)

    # --- serving (runs on the server's request threads) ----------------------------------

    def serve(self, request: BaseHTTPRequestHandler) -> None:
        """Record one request and answer it according to the current behaviour."""
        push = self._record(request)
        status, answer, headers = self._answer(push)
        with self._cond:  # before answering: a client may look the moment it has its answer
            push.status = status
        _respond(request, status, answer, headers)
        with self._cond:
            push.answered_at = time.monotonic()
            self._cond.notify_all()

    def _record(self, request: BaseHTTPRequestHandler) -> Push:
        raw = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        headers = {name.lower(): value for name, value in request.headers.items()}
        expected = f"Bearer {self.token}".encode()
        push = Push(
            method=request.command,
            path=request.path,
            headers=headers,
            body=_parse_json(raw),
            raw=raw,
            received_at=time.monotonic(),
            authorized=hmac.compare_digest(headers.get("authorization", "").encode(), expected),
        )
        with self._cond:
            self._pushes.append(push)
            self._cond.notify_all()
        return push

    def _answer(self, push: Push) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not push.authorized:
            return 401, {"error": "unauthenticated"}, {}
        if self.signatures is not None:
            push.verified_by = self.signatures.verify(push.headers, push.raw)
            if push.verified_by is None:
                return 401, {"error": "bad_signature"}, {}
        if push.path != MIRROR_PATH or push.method != "POST":
            return 404, {"error": "not_found"}, {}
        if self._take_fault("hang") is not None and not self._hold():
            return 503, {"error": "shutting down"}, {}
        fault = self._take_fault("fail")
        if fault is not None:
            headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
            return fault.status, {"error": "scripted failure"}, headers
        if push.body is None:
            return 400, {"error": "invalid_json"}, {}
        return 200, {"applied": self._apply(push.rows)}, {}

    def _take_fault(self, kind: str) -> _Fault | None:
        with self._cond:
            fault = next((f for f in self._faults if f.kind == kind), None)
            if fault is not None and fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
            return fault

    def _hold(self) -> bool:
        """Wait for `release()`; False when the receiver stops (or the hang limit passes)."""
        with self._cond:
            generation = self._released
            self._cond.wait_for(
                lambda: self._released > generation or self._stopping, self._hang_limit
            )
            return self._released > generation and not self._stopping

    def _apply(self, rows: list[dict[str, Any]]) -> int:
        applied = 0
        with self._cond:
            for row in rows:
                current = self._rows.get(row["queue_customer_id"])
                if current is None or row.get("version", 0) > current.get("version", 0):
                    self._rows[row["queue_customer_id"]] = row
                    applied += 1
        return applied


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _respond(
    request: BaseHTTPRequestHandler, status: int, answer: dict[str, Any], headers: dict[str, str]
) -> None:
    payload = json.dumps(answer).encode()
    try:
        request.send_response(status)
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (e.g. timed out on a held request)


def _handler_class(receiver: RaptorReceiver) -> type[BaseHTTPRequestHandler]:
    class _MirrorHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # idle keep-alive connections close on their own
        disable_nagle_algorithm = True  # headers and body go out as two writes

        def do_POST(self) -> None:
            receiver.serve(self)

        def do_GET(self) -> None:
            receiver.serve(self)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output clean."""

    return _MirrorHandler
