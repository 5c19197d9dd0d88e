"""Answers the lanes write straight to ASGI (api/webhook_lane.py, api/read_lane.py):
JSON, and errors in the one shape of SPEC §3, as the framework's routes give them."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import Message, Scope, Send

from raxx_queue.errors import ServiceError, error_body
from raxx_queue.jsonio import dumps

JSON_HEADERS = [(b"content-type", b"application/json")]


def request_id_in(scope: Scope) -> str:
    """The request id RequestContextMiddleware gave the request."""
    return str(scope.get("state", {}).get("request_id", ""))


async def answer_json(
    send: Send, status: int, content: bytes, headers: Mapping[str, str] | None = None
) -> None:
    extra = [(name.lower().encode(), value.encode()) for name, value in (headers or {}).items()]
    start: Message = {
        "type": "http.response.start",
        "status": status,
        "headers": [*JSON_HEADERS, (b"content-length", str(len(content)).encode()), *extra],
    }
    await send(start)
    await send({"type": "http.response.body", "body": content})


async def answer_error(send: Send, scope: Scope, error: ServiceError) -> None:
    """A ServiceError as the framework's handler renders it."""
    body = error_body(error.code, error.message, request_id_in(scope))
    await answer_json(send, error.status, dumps(body), error.headers)
