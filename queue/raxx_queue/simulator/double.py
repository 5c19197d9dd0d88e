"""A Stripe API test double that the real `stripe` SDK talks to through an httpx transport.

    double = StripeDouble()
    client = make_stripe_client(double)                  # a real stripe.StripeClient
    customer = await client.v1.customers.create_async({"email": "a@example.com"})
    [call] = double.requests_to("POST", "/v1/customers")
    assert call.form == {"email": "a@example.com"} and call.idempotency_key

Responses are Stripe's official fixtures with the request's values written in; state is
in memory; every request is recorded; `Idempotency-Key` replays the first answer; failures
can be scripted with `fail_next` / `fail_always`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import httpx
import stripe

from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.recording import (
    FailureKind,
    KeptAnswer,
    RecordedRequest,
    ScriptedFailure,
    failure_answer,
    idempotency_mismatch,
    record_of,
)
from raxx_queue.simulator.routes import resolve
from raxx_queue.simulator.state import Call, StripeApiError, StripeState, card_declined

T = TypeVar("T")


class StripeDouble:
    """In-memory Stripe account served over an `httpx.MockTransport`; safe for concurrent calls.

    Every critical section is synchronous (no await inside), so one `threading.Lock` guards the
    async handler and the synchronous `put_*` helpers alike, whichever loop or thread calls.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        clock: Callable[[], float] = time.time,
        seed: int | None = 0,
    ) -> None:
        self._api_key = api_key  # None: any bearer key is accepted
        self._lock = threading.Lock()
        self._state = StripeState(clock=clock, rng=random.Random(seed))
        self._requests: list[RecordedRequest] = []
        self._failures: list[ScriptedFailure] = []
        self._answers: dict[str, KeptAnswer] = {}
        self._amendments: dict[str, Callable[[Json], None]] = {}
        self._delays: dict[str, float] = {}
        self.transport = httpx.MockTransport(self.handle)

    # --- scripting ---------------------------------------------------------------------

    def fail_next(
        self,
        path_prefix: str,
        kind: FailureKind,
        *,
        method: str | None = None,
        times: int = 1,
        decline_code: str = "insufficient_funds",
        retry_after: int | None = None,
        after: int = 0,
    ) -> None:
        """Fail the next `times` matching requests with `kind` (queued after earlier scripts),
        once `after` of them have gone through; `retry_after` adds Stripe's `Retry-After`
        header to the answer."""
        with self._lock:
            self._failures.append(
                ScriptedFailure(kind, path_prefix, method, times, decline_code, retry_after, after)
            )

    def delay(self, path_prefix: str, seconds: float) -> None:
        """Answer every request whose path starts with `path_prefix` `seconds` late (a slow
        Stripe), until `clear_failures()`."""
        with self._lock:
            self._delays[path_prefix] = seconds

    def fail_always(
        self,
        path_prefix: str,
        kind: FailureKind,
        *,
        method: str | None = None,
        retry_after: int | None = None,
        after: int = 0,
    ) -> None:
        """Make every matching request fail with `kind` until `clear_failures()` (once `after`
        of them have gone through)."""
        with self._lock:
            self._failures.append(
                ScriptedFailure(
                    kind, path_prefix, method, None, retry_after=retry_after, after=after
                )
            )

    def amend_created(self, path: str, amend: Callable[[Json], None]) -> None:
        """Change each object a POST to `path` creates, as Stripe keeps and answers it:
        what Stripe adds by itself (an add-on item a Dashboard rule attaches, say)."""
        with self._lock:
            self._amendments[path] = amend

    def listen(self, listener: Callable[[Json], None]) -> None:
        """Emit Stripe's events from now on (as the simulator does), each to `listener`
        too; the test suite's double emits none unless asked."""
        with self._lock:
            self._state.emitting = True
            self._state.listeners.append(listener)

    def run(self, action: Callable[[StripeState], T]) -> T:
        """Run `action` on the account, under the lock every request takes."""
        with self._lock:
            return action(self._state)

    def clear_failures(self) -> None:
        """Drop every scripted failure and delay."""
        with self._lock:
            self._failures.clear()
            self._delays.clear()

    def put(self, obj: Json) -> None:
        """Store `obj` as Stripe's current truth (kind chosen by its id prefix)."""
        with self._lock:
            self._state.store(copy.deepcopy(obj))

    def put_customer(self, obj: Json) -> None:
        """Store a customer (e.g. from `stripe_objects.customer_obj`)."""
        self.put(obj)

    def put_subscription(self, obj: Json) -> None:
        """Store a subscription, e.g. one differing from an event being delivered."""
        self.put(obj)

    def put_invoice(self, obj: Json) -> None:
        """Store an invoice."""
        self.put(obj)

    def add_event(self, event: Json, *, delivered: bool = True) -> None:
        """Add an event to the Events API; `delivered=False` makes it a failed delivery."""
        with self._lock:
            self._state.store(copy.deepcopy(event))
            if not delivered:
                self._state.undelivered_events.add(event["id"])

    def mark_delivered(self, event_id: str) -> None:
        """A retry of the event succeeded: it leaves `delivery_success=false`."""
        with self._lock:
            self._state.undelivered_events.discard(event_id)

    def add_v2_event(self, event: Json) -> None:
        """Store a v2 event (`GET /v2/core/events/{id}`), e.g. the one behind a thin
        notification built by `raxx_queue.simulator.thin`."""
        with self._lock:
            self._state.v2_events[event["id"]] = copy.deepcopy(event)

    # --- inspection --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, method: str, path_prefix: str) -> list[RecordedRequest]:
        """Recorded requests with this method whose path starts with `path_prefix`."""
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def get(self, object_id: str) -> Json:
        """A copy of the stored object (any kind) or KeyError."""
        with self._lock:
            found = self._state.find(object_id)
            if found is None:
                raise KeyError(object_id)
            return copy.deepcopy(found)

    @property
    def customers(self) -> list[Json]:
        """Stored customers (deleted ones included), oldest first."""
        return self._snapshot(self._state.customers)

    @property
    def subscriptions(self) -> list[Json]:
        """Stored subscriptions, oldest first."""
        return self._snapshot(self._state.subscriptions)

    @property
    def invoices(self) -> list[Json]:
        """Stored invoices, oldest first."""
        return self._snapshot(self._state.invoices)

    @property
    def checkout_sessions(self) -> list[Json]:
        """Stored Checkout Sessions, oldest first."""
        return self._snapshot(self._state.checkout_sessions)

    @property
    def portal_sessions(self) -> list[Json]:
        """Stored Customer Portal sessions, oldest first."""
        return self._snapshot(self._state.portal_sessions)

    def _snapshot(self, store: dict[str, Json]) -> list[Json]:
        with self._lock:
            return copy.deepcopy(list(store.values()))

    # --- serving -----------------------------------------------------------------------

    async def handle(self, request: httpx.Request) -> httpx.Response:
        """The transport's handler: record, maybe fail, else answer as Stripe would."""
        record = record_of(request, self._api_key)
        with self._lock:
            delay = next(
                (s for prefix, s in self._delays.items() if record.path.startswith(prefix)), 0.0
            )
        if delay:
            await asyncio.sleep(delay)
        with self._lock:
            self._requests.append(record)
            failure = self._take_failure(record)
            if failure is None or failure.kind in ("card_declined", "lost_response"):
                status, payload, record.replayed = self._execute(record, failure)
            else:
                status, payload = failure_answer(failure, request)
            lost = failure is not None and failure.kind == "lost_response"
            record.status = None if lost else status
        if lost:
            raise httpx.ReadTimeout("scripted: Stripe acted, the answer was lost", request=request)
        response = self._response(record, status, payload)
        if failure is not None and failure.retry_after is not None:
            response.headers["Retry-After"] = str(failure.retry_after)
        return response

    def _take_failure(self, record: RecordedRequest) -> ScriptedFailure | None:
        failure = next((f for f in self._failures if f.matches(record.method, record.path)), None)
        if failure is None:
            return None
        if failure.after > 0:
            failure.after -= 1
            return None
        if failure.remaining is not None:
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failures.remove(failure)
        record.failure = failure.kind
        return failure

    def _execute(
        self, record: RecordedRequest, failure: ScriptedFailure | None
    ) -> tuple[int, Json, bool]:
        denied = self._authentication_error(record)
        if denied is not None:
            return denied.status, denied.body, False
        key = record.idempotency_key if record.method == "POST" else None
        if key is not None and key in self._answers:
            return self._replay(record, self._answers[key])
        status, payload = self._dispatch(record, failure)
        # Stripe keeps the answer of an endpoint that ran; rejected validation is not kept.
        if key is not None and (status < 400 or status == 402):
            self._answers[key] = KeptAnswer(
                record.method, record.path, record.form, status, payload
            )
        return status, payload, False

    @staticmethod
    def _authentication_error(record: RecordedRequest) -> StripeApiError | None:
        if not record.has_authorization:
            return StripeApiError(401, "invalid_request_error", "You did not provide an API key.")
        if not record.api_key_accepted:
            return StripeApiError(401, "invalid_request_error", "Invalid API Key provided.")
        return None

    def _replay(self, record: RecordedRequest, kept: KeptAnswer) -> tuple[int, Json, bool]:
        if (kept.method, kept.path, kept.form) != (record.method, record.path, record.form):
            error = idempotency_mismatch(record.idempotency_key)
            return error.status, error.body, False
        return kept.status, copy.deepcopy(kept.payload), True

    def _dispatch(
        self, record: RecordedRequest, failure: ScriptedFailure | None
    ) -> tuple[int, Json]:
        try:
            if failure is not None and failure.kind == "card_declined":
                raise card_declined(failure.decline_code)
            handler, args = resolve(record.method, record.path)
            payload = handler(self._state, Call(record.params, args))
            amend = self._amendments.get(record.path) if record.method == "POST" else None
            if amend is not None:
                amend(self._state.get(payload["id"]))
                amend(payload)
            return 200, payload
        except StripeApiError as error:
            return error.status, error.body

    def _response(self, record: RecordedRequest, status: int, payload: Json) -> httpx.Response:
        headers = {
            "Content-Type": "application/json",
            "Request-Id": self._state.new_id("req_", 14),
            "Stripe-Version": record.stripe_version or stripe.api_version,
        }
        if record.idempotency_key:
            headers["Idempotency-Key"] = record.idempotency_key
        if record.replayed:
            headers["Idempotent-Replayed"] = "true"
        return httpx.Response(status, headers=headers, content=json.dumps(payload).encode())
