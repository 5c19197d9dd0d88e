"""The Stripe double served over real HTTP on 127.0.0.1, for commands run as processes.

A `raxx-queue` subprocess cannot take an httpx transport; it takes
`STRIPE_API_BASE=server.url` instead and reaches the same double.
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from raxx_queue.simulator.double import StripeDouble


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class StripeServer:
    """`with StripeServer(double) as server:` — serves `double` at `server.url`."""

    def __init__(self, double: StripeDouble) -> None:
        self.double = double
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        query = scope["query_string"].decode()
        url = f"https://api.stripe.test{scope['path']}" + (f"?{query}" if query else "")
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"]]
        request = httpx.Request(scope["method"], url, headers=headers, content=body)
        response = await self.double.handle(request)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": response.content})

    def __enter__(self) -> StripeServer:
        self._thread.start()
        # uvicorn has no start-up signal to wait on but its flag
        while not self._server.started and self._thread.is_alive():
            threading.Event().wait(0.01)
        if not self._server.started:
            raise RuntimeError("the Stripe server did not start")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
