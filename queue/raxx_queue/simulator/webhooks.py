"""Stripe's webhook deliveries from the simulator: signed, asynchronous, retried, unordered.

One thread delivers every event the account emits to one endpoint, signed with the
endpoint secret as Stripe signs (`Stripe-Signature: t=…,v1=…`). Like Stripe it does
not promise order: with `shuffle` on, the events waiting at each moment go out in a
random order. A delivery that fails is retried a few times, then given up and marked
undelivered in the Events API (where `raxx-queue events replay` finds it).
"""

from __future__ import annotations

import json
import queue
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import stripe

from raxx_queue.simulator.fixtures import Json

RETRY_DELAYS = (0.2, 0.5, 1.0, 2.0)


@dataclass
class Delivery:
    """What became of one event's delivery (so far)."""

    event_id: str
    event_type: str
    status: int | None = None  # the last answer's HTTP status; None: no answer
    outcome: str | None = None  # Queue's outcome (applied, duplicate, stale, ignored)
    attempts: int = 0
    done: bool = False

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> Json:
        return {
            "id": self.event_id,
            "type": self.event_type,
            "delivered": self.delivered,
            "status": self.status,
            "outcome": self.outcome,
            "attempts": self.attempts,
        }


class WebhookSender:
    """A listener of the simulator's account that delivers each event in a thread."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        shuffle: bool = False,
        on_undelivered: Callable[[str], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.shuffle = shuffle
        self._secret = secret
        self._on_undelivered = on_undelivered
        self._rng = rng or random.Random()
        self._pending: queue.SimpleQueue[Json | None] = queue.SimpleQueue()
        self._deliveries: dict[str, Delivery] = {}
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="stripe-webhooks", daemon=True)
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, connect=2.0))

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._pending.put(None)
        self._thread.join(timeout=15)
        self._client.close()

    def __call__(self, event: Json) -> None:
        """The account emitted an event: deliver it (later, from the thread)."""
        with self._changed:
            self._deliveries[event["id"]] = Delivery(event["id"], event["type"])
        self._pending.put(event)

    def wait(self, event_ids: Sequence[str], timeout: float) -> list[Delivery]:
        """The deliveries of these events once each is done, or as they are at the timeout."""
        with self._changed:
            self._changed.wait_for(
                lambda: all(self._deliveries[i].done for i in event_ids), timeout=timeout
            )
            return [self._deliveries[i] for i in event_ids]

    def _run(self) -> None:
        while True:
            batch = [self._pending.get()]
            while not self._pending.empty():
                batch.append(self._pending.get())
            if self.shuffle:
                self._rng.shuffle(batch)
            for event in batch:
                if event is None:
                    return
                self._deliver(event)

    def _deliver(self, event: Json) -> None:
        payload = json.dumps(event, separators=(",", ":"))
        delivery = self._deliveries[event["id"]]
        for delay in (0.0, *RETRY_DELAYS):
            if delay:
                threading.Event().wait(delay)
            header = stripe.WebhookSignature.generate_signature_header(payload, self._secret)
            status, outcome = self._post(payload, header)
            with self._changed:
                delivery.attempts += 1
                delivery.status, delivery.outcome = status, outcome
            if delivery.delivered:
                break
        with self._changed:
            delivery.done = True
            self._changed.notify_all()
        if not delivery.delivered and self._on_undelivered is not None:
            self._on_undelivered(event["id"])

    def _post(self, payload: str, header: str) -> tuple[int | None, str | None]:
        try:
            response = self._client.post(
                self.url,
                content=payload,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            )
        except httpx.HTTPError:
            return None, None
        try:
            outcome = response.json().get("outcome")
        except ValueError:
            outcome = None
        return response.status_code, outcome if isinstance(outcome, str) else None
