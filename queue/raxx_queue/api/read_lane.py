"""A subscription read straight to its handler, past the framework's routing.

`GET /api/v1/billing/subscriptions/{queue_customer_id}` is the read Raptor and Console
make most, and in order it needs none of what the framework does per request (route
matching over every route, a Request and its dependency solving): this ASGI layer
answers it itself, when billing is on, the id is well formed, and the bearer token is a
caller's that may read billing (the same rules as the route's: `caller_of`,
PERMISSIONS, QUEUE_CUSTOMER_ID_PATTERN, `reads.get_subscription`). Anything else (no or
a wrong token, a caller without the permission, an ill-formed id, billing switched off,
another method) goes on to the framework, which refuses it as the declared route does;
a customer not found or a database away are answered here in the same error shape.
Request ids, the request log line and its metrics stay with the middleware around it.
The route stays declared in `api/subscriptions.py`, which is what the OpenAPI schema
and the auth matrix read.
"""

from __future__ import annotations

import re

from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from raxx_queue.api.deps import PERMISSIONS, Permission, admit_caller, app_services, caller_of
from raxx_queue.api.lane_answers import answer_error, answer_json
from raxx_queue.api.middleware import header_value
from raxx_queue.billing import reads
from raxx_queue.errors import ServiceError
from raxx_queue.vocabulary import QUEUE_CUSTOMER_ID_PATTERN

READERS = PERMISSIONS[Permission.BILLING_READ]
# whole-string match: never looser than the route's own check (pydantic's), so that an
# id the route would refuse is always left to it
_QUEUE_CUSTOMER_ID = re.compile(QUEUE_CUSTOMER_ID_PATTERN)


class SubscriptionReadLane:
    """Answer permitted subscription reads without the framework; pass the rest on."""

    def __init__(self, app: ASGIApp, route: APIRoute) -> None:
        self.app = app
        # the declared route: the paths it matches are the ones answered here, and
        # metrics and logs name it as for any other
        self.route = route

    def _queue_customer_id(self, scope: Scope) -> str | None:
        if scope["type"] != "http" or scope["method"] != "GET":
            return None
        match = self.route.path_regex.match(scope["path"])
        if match is None:
            return None
        queue_customer_id = match["queue_customer_id"]
        return queue_customer_id if _QUEUE_CUSTOMER_ID.fullmatch(queue_customer_id) else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        queue_customer_id = self._queue_customer_id(scope)
        if queue_customer_id is None:
            await self.app(scope, receive, send)
            return
        services = app_services(scope["app"])
        caller = caller_of(services.settings, header_value(scope, b"authorization"))
        if not services.settings.flag_queue_billing or caller not in READERS:
            await self.app(scope, receive, send)  # refused there, as by the route
            return
        scope["route"] = self.route
        admit_caller(scope, caller)
        try:
            async with services.db.connection() as conn:
                summary = await reads.get_subscription(conn, queue_customer_id)
        except ServiceError as error:
            await answer_error(send, scope, error)
            return
        await answer_json(send, 200, summary.model_dump_json().encode())
