"""The simulator's scenarios: what `raxx-queue simulate` asks Stripe to do, and what came of it.

Each scenario changes the account (under the double's lock), then waits for the events
it emitted to reach Queue, and answers with each event and Queue's outcome for it.
"""

from __future__ import annotations

from collections.abc import Callable

from raxx_queue.simulator import disputes, lifecycle
from raxx_queue.simulator.clock import SimulatedClock
from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.routes_subscriptions import delete_customer
from raxx_queue.simulator.state import Call, StripeApiError, StripeState
from raxx_queue.simulator.webhooks import WebhookSender

DELIVERY_TIMEOUT_SECONDS = 20.0
MAX_ADVANCE_DAYS = 400

Action = Callable[[StripeState], None]


class Scenarios:
    """Runs a named scenario on the simulator's account."""

    def __init__(self, double: StripeDouble, clock: SimulatedClock, sender: WebhookSender):
        self._double = double
        self._clock = clock
        self._sender = sender

    def run(self, name: str, params: Json) -> Json:
        """{"scenario", "events": [delivery...]}; a StripeApiError for a bad request."""
        action = self._action(name, params)
        emitted = self._double.run(lambda state: _emitted_by(state, action))
        deliveries = self._sender.wait(emitted, DELIVERY_TIMEOUT_SECONDS)
        return {
            "scenario": name,
            "clock_offset_days": round(self._clock.offset / lifecycle.DAY, 3),
            "events": [delivery.as_dict() for delivery in deliveries],
        }

    def _action(self, name: str, params: Json) -> Action:
        if name == "advance":
            days = params.get("days")
            if not isinstance(days, int | float) or not 0 < days <= MAX_ADVANCE_DAYS:
                raise StripeApiError(
                    400, "invalid_request_error", f"days: 0 < days <= {MAX_ADVANCE_DAYS}"
                )
            return lambda state: self._advance(state, float(days))
        customer = params.get("queue_customer_id")
        if not isinstance(customer, str) or not customer:
            raise StripeApiError(400, "invalid_request_error", "queue_customer_id is required")
        actions: dict[str, Action] = {
            "pay": lambda state: lifecycle.pay(state, customer),
            "fail-payment": lambda state: lifecycle.fail_payment(state, customer),
            "cancel": lambda state: lifecycle.cancel(state, customer),
            "delete-customer": lambda state: _delete(state, customer),
            "pause-collection": lambda state: lifecycle.pause_collection(
                state, customer, resume=params.get("resume") is True
            ),
            "dispute": lambda state: _dispute(state, customer, params.get("close")),
        }
        if name not in actions:
            raise StripeApiError(404, "invalid_request_error", f"no scenario {name!r}")
        return actions[name]

    def _advance(self, state: StripeState, days: float) -> None:
        self._clock.advance(days * lifecycle.DAY)
        lifecycle.run_due(state)


def _emitted_by(state: StripeState, action: Action) -> list[str]:
    """The ids of the events `action` emitted, in order."""
    before = len(state.events)
    action(state)
    return list(state.events)[before:]


def _delete(state: StripeState, queue_customer_id: str) -> None:
    customer = lifecycle.customer_of(state, queue_customer_id)
    delete_customer(state, Call({}, (customer["id"],)))


def _dispute(state: StripeState, queue_customer_id: str, close: object) -> None:
    """Open a dispute on the customer's newest payment, or close its open one."""
    if close is None:
        disputes.open_dispute(state, queue_customer_id)
    elif close in ("won", "lost"):
        disputes.close_dispute(state, queue_customer_id, "won" if close == "won" else "lost")
    else:
        raise StripeApiError(400, "invalid_request_error", "close: won or lost")
