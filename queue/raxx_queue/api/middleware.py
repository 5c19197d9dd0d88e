"""Pure ASGI middleware: request ids, request logging, body size limit."""

from __future__ import annotations

import logging
import random
import re
import time

import structlog
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from raxx_queue.errors import error_body
from raxx_queue.jsonio import dumps
from raxx_queue.log_limits import REFUSED_REQUEST_LINES, current_source, source_of
from raxx_queue.logs import log_info
from raxx_queue.metrics import HTTP_REQUESTS, labelled

MAX_BODY_BYTES = 1024 * 1024
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
log = logging.getLogger("raxx_queue.http")


def header_value(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _new_request_id() -> str:
    # 128 random bits in uuid4's hex form; a correlation id, not a secret, so the
    # process's PRNG does (uuid4 reads the kernel's entropy: a system call a request)
    return f"{random.getrandbits(128):032x}"


def annotate_request_log(scope: Scope, **fields: object) -> None:
    """Add fields to the request's one log line (what a handler did, e.g. an outcome)."""
    scope.setdefault("state", {}).setdefault("log_fields", {}).update(fields)


class RequestContextMiddleware:
    """Echo a well-formed X-Request-ID (or mint one), bind it for logs, log the request.

    One line per request, written when it ends: handlers add their own fields to it
    with annotate_request_log rather than logging a second line.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = header_value(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else _new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        source = source_of(scope["headers"], scope.get("client"))
        current_source.set(source)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            labelled(HTTP_REQUESTS, path, str(status)).inc()
            caller = scope["state"].get("caller")
            fields = scope["state"].get("log_fields", {})
            capped = caller is None and 400 <= status < 500
            if capped and REFUSED_REQUEST_LINES.allow(source):
                fields = {**fields, "suppressed": REFUSED_REQUEST_LINES.take_suppressed()}
                capped = False
            # refused anonymous requests within REFUSED_REQUEST_LINES' caps; known callers,
            # successes and server errors always
            if path not in ("/health", "/ready", "/metrics") and not capped:
                log_info(
                    log,
                    "request",
                    method=scope["method"],
                    route=path,
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 2),
                    caller=caller,
                    **fields,
                )


class BodyTooLarge(HTTPException):
    """Raised from receive() once the streamed body passes the limit.

    An HTTPException, not a ServiceError: FastAPI turns any other failure while it
    reads a JSON body into a 400, but re-raises HTTPExceptions (rendered 413).
    """

    def __init__(self) -> None:
        super().__init__(413, "request body over 1 MiB", headers={"Connection": "close"})


class BodyLimitMiddleware:
    """413 for bodies over the limit: by Content-Length up front, or while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = header_value(scope, b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            await self._reject(scope, send)
            return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        request_id = str(scope.get("state", {}).get("request_id", ""))
        body = dumps(error_body("PAYLOAD_TOO_LARGE", "request body over 1 MiB", request_id))
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
