"""The Stripe double served over real HTTP on 127.0.0.1, for commands run as processes.

A `raxx-queue` subprocess cannot take an httpx transport; it takes
`STRIPE_API_BASE=server.url` instead and reaches the same double. With scenarios (the
simulator of `raxx-queue dev`), `POST /_simulator/scenarios/{name}` runs one of them;
that path is the simulator's own, not Stripe's.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx
import uvicorn

from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.state import StripeApiError

if TYPE_CHECKING:
    from raxx_queue.simulator.scenarios import Scenarios

SCENARIOS_PATH = "/_simulator/scenarios/"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class StripeServer:
    """`with StripeServer(double) as server:` — serves `double` at `server.url`."""

    def __init__(
        self, double: StripeDouble, scenarios: Scenarios | None = None, port: int | None = None
    ) -> None:
        self.double = double
        self.scenarios = scenarios
        self.port = port or _free_port()
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
        if self.scenarios is not None and scope["path"].startswith(SCENARIOS_PATH):
            status, answer = await self._scenario(scope["path"].removeprefix(SCENARIOS_PATH), body)
            await _send_json(send, status, answer)
            return
        query = scope["query_string"].decode()
        url = f"https://api.stripe.test{scope['path']}" + (f"?{query}" if query else "")
        headers = [(k.decode(), v.decode()) for k, v in scope["headers"]]
        request = httpx.Request(scope["method"], url, headers=headers, content=body)
        response = await self.double.handle(request)
        await _send_json(send, response.status_code, response.content)

    async def _scenario(self, name: str, body: bytes) -> tuple[int, bytes]:
        assert self.scenarios is not None
        try:
            params = json.loads(body or b"{}")
            if not isinstance(params, dict):
                raise ValueError("not an object")
        except ValueError:
            return 400, b'{"error": {"message": "the body must be a JSON object"}}'
        try:
            # it waits for Queue to take the events: off the server's event loop
            answer = await asyncio.to_thread(self.scenarios.run, name, params)
        except StripeApiError as error:
            return error.status, json.dumps(error.body).encode()
        return 200, json.dumps(answer).encode()

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


async def _send_json(send: Any, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
