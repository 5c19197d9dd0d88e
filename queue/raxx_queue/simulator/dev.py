"""The local peers `raxx-queue dev` runs beside Queue: a Stripe simulator and a Raptor sink.

The simulator answers every Stripe call Queue makes and, like Stripe, sends Queue a
signed webhook for every change; it also plays the customer's browser, confirming a
new subscription's first payment with the card given to subscribe. The sink takes the
mirror pushes and prints them. Neither may run in production or with a live key.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from raxx_queue.settings import ConfigError
from raxx_queue.simulator import lifecycle
from raxx_queue.simulator.clock import SimulatedClock
from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.raptor_sink import RaptorSink
from raxx_queue.simulator.scenarios import Scenarios
from raxx_queue.simulator.server import StripeServer
from raxx_queue.simulator.webhooks import WebhookSender

STATE_FILE = "dev-state.json"
# what the customer's browser takes to confirm a payment after the subscribe answer
CONFIRM_AFTER_SECONDS = 0.3
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")


@dataclass(frozen=True)
class LocalPeers:
    """Where the local peers listen; kept in the data dir for `raxx-queue simulate`."""

    queue_url: str
    stripe_url: str
    raptor_url: str

    def save(self, data_dir: Path) -> None:
        (data_dir / STATE_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, data_dir: Path) -> LocalPeers:
        try:
            return cls(**json.loads((data_dir / STATE_FILE).read_text()))
        except (OSError, ValueError, TypeError):
            raise ConfigError(
                f"QUEUE_DATA_DIR: no running `raxx-queue dev` found ({STATE_FILE} in "
                f"{data_dir}); start one with `make run`"
            ) from None


def refuse_unsafe(queue_env: str, stripe_key: str | None) -> None:
    """The simulator is for development: never production, never a live key."""
    if queue_env == "production":
        raise ConfigError("QUEUE_ENV: the Stripe simulator never runs in production")
    if stripe_key is not None and stripe_key.startswith(LIVE_KEY_PREFIXES):
        raise ConfigError("STRIPE_RESTRICTED_KEY: the Stripe simulator never runs with a live key")


class _Browser:
    """Confirms each new incomplete subscription's first payment, as Stripe.js would."""

    def __init__(self, double: StripeDouble) -> None:
        self._double = double

    def __call__(self, event: Json) -> None:
        subscription = event["data"]["object"]
        if (
            event["type"] == "customer.subscription.created"
            and subscription["status"] == "incomplete"
        ):
            timer = threading.Timer(CONFIRM_AFTER_SECONDS, self._confirm, (subscription["id"],))
            timer.daemon = True
            timer.start()

    def _confirm(self, subscription_id: str) -> None:
        self._double.run(lambda state: lifecycle.confirm_first_payment(state, subscription_id))


@contextmanager
def local_peers(
    *,
    queue_port: int,
    webhook_secret: str,
    mirror_token: str,
    mirror_signing_secrets: Sequence[str] = (),
    shuffle_webhooks: bool,
) -> Iterator[LocalPeers]:
    """The simulator and the sink, serving until the block ends."""
    clock = SimulatedClock()
    double = StripeDouble(clock=clock, seed=None)
    queue_url = f"http://127.0.0.1:{queue_port}"

    def undelivered(event_id: str) -> None:
        double.run(lambda state: state.undelivered_events.add(event_id))

    sender = WebhookSender(
        f"{queue_url}/api/v1/billing/webhook",
        webhook_secret,
        shuffle=shuffle_webhooks,
        on_undelivered=undelivered,
    )
    double.listen(sender)
    double.listen(_Browser(double))
    scenarios = Scenarios(double, clock, sender)
    with (
        StripeServer(double, scenarios) as server,
        RaptorSink(mirror_token, signing_secrets=mirror_signing_secrets) as sink,
    ):
        sender.start()
        try:
            yield LocalPeers(queue_url=queue_url, stripe_url=server.url, raptor_url=sink.url)
        finally:
            sender.close()
