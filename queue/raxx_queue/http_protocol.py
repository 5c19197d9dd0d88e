"""uvicorn's httptools protocol with the limits it lacks (docs/security.md, finding 11).

uvicorn arms no timer until a first response has been sent, and httptools buffers a
request head of any size: a client that connects and trickles (or sends nothing) holds
its connection for ever, and a 4 MB header is read whole. Here a request's head must
arrive within HEAD_TIMEOUT_SECONDS of its first byte (or of the connection) and stay
under MAX_HEAD_BYTES (else 431), and its body within BODY_TIMEOUT_SECONDS of the head.
The figures fit Heroku's router, the only client in production: it sends whole heads at
once, lines of at most 8,192 bytes, and gives up on a request after 30 seconds.

It also writes a response's head together with its body (HeadWithBody): uvicorn writes
them one after the other, two system calls and two TCP segments for every answer.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from raxx_queue.errors import error_body
from raxx_queue.jsonio import dumps

MAX_HEAD_BYTES = 32 * 1024
HEAD_TIMEOUT_SECONDS = 10.0
BODY_TIMEOUT_SECONDS = 30.0
# Heroku's Router 2.0 closes idle keep-alive connections after 90 s: closing is left to
# it, so that it never sends a request on a connection Queue is just closing
KEEP_ALIVE_SECONDS = 95


class HeadTooLarge(Exception):
    """Raised from a parser callback to stop reading an oversized head."""


class HeadWithBody:
    """A connection's transport as its responses see it: a response's head is held back
    until the first write of its body, or the response's end, and leaves with it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._head_next = False
        self._held: bytes | None = None

    def expect_head(self) -> None:
        """The next write (but an interim 100 Continue) is a response's head."""
        self._head_next = True

    def write(self, data: bytes) -> None:
        if self._held is not None:
            data, self._held = self._held + data, None
        elif self._head_next and not data.startswith(b"HTTP/1.1 100 "):
            self._head_next, self._held = False, data
            return
        self._transport.write(data)

    def flush(self) -> None:
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a head size limit and head and body deadlines."""

    max_head_bytes = MAX_HEAD_BYTES
    head_timeout = HEAD_TIMEOUT_SECONDS
    body_timeout = BODY_TIMEOUT_SECONDS
    _head_bytes = 0
    _in_head = True
    _head_refused = False
    _head_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._responses = HeadWithBody(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_refused:
            return
        in_head = self._in_head
        super().data_received(data)
        if in_head and self._in_head and not self._head_refused:
            # the head is still incomplete after this chunk: count it whole
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._head_refused = True
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head = True
        self._head_bytes = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._body_timer = self.loop.call_later(self.body_timeout, self._too_slow)
        super().on_headers_complete()
        if self.cycle is not None and self.cycle.scope is self.scope:
            self._responses.expect_head()
            self.cycle.transport = cast(asyncio.Transport, self._responses)

    def on_response_complete(self) -> None:
        self._responses.flush()  # a response without a body write (HEAD, 204)
        super().on_response_complete()

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        # a HeadTooLarge raised in a callback reaches uvicorn as a parser error
        if self._head_refused:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._head_refused = True
            raise HeadTooLarge()

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout, self._too_slow)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _too_slow(self) -> None:
        """A head or body that did not arrive in time: the connection is closed."""
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.close()

    def _refuse_head(self) -> None:
        self._cancel_timers()
        if self.transport.is_closing():
            return
        body = dumps(error_body("HEADERS_TOO_LARGE", "request head over 32 KiB", ""))
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n" + body
        )
        self.transport.close()
