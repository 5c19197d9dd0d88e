"""Full-size deliveries: Stripe's events with every field of its fixtures, each one applying.

The mixed stream (bench/stream.py) is light on purpose-built objects (about 3.0 KB a
delivery) and holds duplicates, late and ignored events. This workload is what a
subscription business mostly receives: subscription updates and invoice events of
existing customers, each object built from every field of Stripe's fixture
(`fixtures3.json`; only the values Queue or the peer read are set to a coherent story),
about 4.5 KB a delivery, compact JSON as in bench/stream.py.

Every customer goes through the same six-event cycle, subscription and invoice events
alternating, and every delivery is strictly newer (`created`) than the previous one of
its customer, so every delivery applies in Queue (and passes the peer's
`last_synced_at` guard):

    0  customer.subscription.updated   active, new period
    1  invoice.finalized               open
    2  customer.subscription.updated   active, tier changed (pro <-> pro_plus)
    3  invoice.payment_failed          open, first attempt (Queue: past_due + grace)
    4  customer.subscription.updated   past_due
    5  invoice.paid                    paid (Queue: active again, grace cleared)

The deliveries go round-robin over the customers (customer order fixed by the seed):
round r holds delivery r of every customer, so two deliveries of one customer are
`customers` deliveries apart and cannot overtake each other at any concurrency the
bench uses. Round 0 (each customer's first subscription update, creating its rows) is
the warm-up; from round 1 each customer enters the cycle at its own step, so that any
stretch of the stream holds the six kinds in equal shares. Prices are the configured
tiers' (tests/support/values.py), and the subscription's `metadata.queue_customer_id`
links each Stripe customer to its platform customer, so each applied event also
refreshes the customer's mirror row.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from tests.support import values

from raxx_queue.simulator.events import build_event
from raxx_queue.simulator.fixtures import Json, fixture
from raxx_queue.simulator.objects import new_id

CYCLE = (
    ("customer.subscription.updated", "active"),
    ("invoice.finalized", "open"),
    ("customer.subscription.updated", "active"),
    ("invoice.payment_failed", "open"),
    ("customer.subscription.updated", "past_due"),
    ("invoice.paid", "paid"),
)
MONTH = 30 * 86_400
ROUND_SECONDS = 3_600  # round r of a customer is created an hour after round r - 1
AMOUNT = {values.PRICE_PRO: 2000, values.PRICE_PRO_PLUS: 5000}
ACCOUNT = "acct_1Pgc6rB7WZ01zgkW"
ADDRESS = {
    "city": "San Francisco",
    "country": "US",
    "line1": "510 Townsend Street",
    "line2": None,
    "postal_code": "94103",
    "state": "CA",
}


@dataclass(frozen=True)
class Customer:
    """The stable ids of one customer's Stripe objects."""

    index: int
    queue_customer_id: str
    customer: str
    subscription: str
    item: str


def customers(count: int, seed: int) -> list[Customer]:
    rng = random.Random(seed)
    return [
        Customer(
            index=k,
            queue_customer_id=f"cust_{k}",
            customer=new_id("cus_", rng, length=14),
            subscription=new_id("sub_", rng),
            item=new_id("si_", rng, length=14),
        )
        for k in range(count)
    ]


def _price(customer: Customer, cycle: int, step: int) -> str:
    """The customer's price: half start on pro, and each cycle's step 2 changes tier."""
    upgraded = (customer.index + cycle + (1 if step >= 2 else 0)) % 2 == 1
    return values.PRICE_PRO_PLUS if upgraded else values.PRICE_PRO


def subscription_object(
    customer: Customer, status: str, price_id: str, period_start: int, latest_invoice: str
) -> Json:
    """Stripe's subscription fixture, every field kept; ids, state and period set."""
    sub = fixture("subscription")
    item = sub["items"]["data"][0]
    item["price"].update(
        id=price_id, unit_amount=AMOUNT[price_id], unit_amount_decimal=str(AMOUNT[price_id])
    )
    item["plan"].update(
        id=price_id,
        amount=AMOUNT[price_id],
        amount_decimal=str(AMOUNT[price_id]),
        billing_scheme="per_unit",
        currency="usd",
        interval_count=1,
        livemode=False,
    )
    item.update(
        id=customer.item,
        subscription=customer.subscription,
        created=period_start,
        current_period_start=period_start,
        current_period_end=period_start + MONTH,
    )
    sub["items"]["url"] = f"/v1/subscription_items?subscription={customer.subscription}"
    sub["pending_invoice_item_interval"]["interval_count"] = 1
    sub.update(
        id=customer.subscription,
        customer=customer.customer,
        status=status,
        created=period_start - MONTH,
        start_date=period_start - MONTH,
        billing_cycle_anchor=period_start,
        # fields whose fixture values would mean an ended, cancelling or trial subscription
        cancel_at=None,
        cancel_at_period_end=False,
        canceled_at=None,
        ended_at=None,
        trial_start=None,
        trial_end=None,
        latest_invoice=latest_invoice,
        metadata={"queue_customer_id": customer.queue_customer_id},
    )
    return sub


def invoice_object(
    customer: Customer, invoice_id: str, status: str, price_id: str, when: int, attempts: int
) -> Json:
    """Stripe's invoice fixture, every field kept, in the current API shape."""
    inv = fixture("invoice")
    amount = AMOUNT[price_id]
    paid = status == "paid"
    line = inv["lines"]["data"][0]
    line.update(
        id=f"il_{invoice_id[3:]}",
        invoice=invoice_id,
        amount=amount,
        subtotal=amount,
        description="1 x Queue Pro (at $20.00 / month)",
        period={"start": when, "end": when + MONTH},
    )
    line["pricing"].update(
        price_details={"price": price_id, "product": "prod_QXg1hqf4jFNsqG"},
        unit_amount_decimal=str(amount),
    )
    details = line["parent"]["subscription_item_details"]
    details.update(subscription=customer.subscription, subscription_item=customer.item)
    line["parent"].update(type="subscription_item_details", invoice_item_details=None)
    inv["lines"]["url"] = f"/v1/invoices/{invoice_id}/lines"
    inv["parent"] = {
        "quote_details": None,
        "subscription_details": {"metadata": {}, "subscription": customer.subscription},
        "type": "subscription_details",
    }
    del inv["subscription"]  # not in the current API shape (see raxx_queue/simulator/objects.py)
    inv.update(
        id=invoice_id,
        customer=customer.customer,
        customer_email=f"user{customer.index}@example.com",
        customer_name=f"Customer {customer.index}",
        status=status,
        billing_reason="subscription_cycle",
        number=f"Q{customer.index:05d}-{invoice_id[-4:]}",
        # what a finalized invoice carries (the fixture has nulls there)
        account_name="Raxx",
        customer_address=ADDRESS,
        customer_phone="+14155550100",
        hosted_invoice_url=f"https://invoice.stripe.com/i/{ACCOUNT}/test_{invoice_id[3:]}?s=ap",
        invoice_pdf=f"https://pay.stripe.com/invoice/{ACCOUNT}/test_{invoice_id[3:]}/pdf?s=ap",
        receipt_number=f"{customer.index:04d}-{invoice_id[-4:]}" if paid else None,
        created=when,
        effective_at=when,
        period_start=when - MONTH,
        period_end=when,
        due_date=None,
        next_payment_attempt=None if paid else when + 86_400,
        webhooks_delivered_at=when,
        amount_due=amount,
        amount_paid=amount if paid else 0,
        amount_remaining=0 if paid else amount,
        amount_overpaid=0,
        subtotal=amount,
        subtotal_excluding_tax=amount,
        total=amount,
        total_excluding_tax=amount,
        attempt_count=attempts,
        attempted=attempts > 0,
        auto_advance=not paid,
        last_finalization_error=None,
        status_transitions={
            "finalized_at": when,
            "marked_uncollectible_at": None,
            "paid_at": when if paid else None,
            "voided_at": None,
        },
    )
    return inv


def delivery(customer: Customer, round_: int, start: int, rng: random.Random) -> Json:
    """Delivery `round_` of one customer (an event dict), created `start` + rounds.

    Round 0 creates the customer's subscription (an update with every field, as the
    others); from round 1 each customer enters the cycle at its own step (its index
    modulo the cycle), so that every stretch of the stream holds the whole mix.
    """
    if round_ == 0:
        cycle, step = 0, 0
    else:
        cycle, step = divmod(round_ - 1 + customer.index % len(CYCLE), len(CYCLE))
        cycle += 1
    event_type, status = CYCLE[step]
    created = start + round_ * ROUND_SECONDS + customer.index % ROUND_SECONDS
    period_start = start + cycle * len(CYCLE) * ROUND_SECONDS
    price_id = _price(customer, cycle, step)
    invoice_id = f"in_{customer.subscription[4:18]}{cycle:04d}"
    event_id = new_id("evt_", rng)
    if event_type.startswith("customer.subscription."):
        previous = {"status": "active"} if status == "past_due" else {"items": {"object": "list"}}
        obj = subscription_object(customer, status, price_id, period_start, invoice_id)
        return build_event(
            event_type, obj, event_id=event_id, created=created, previous_attributes=previous
        )
    attempts = {"invoice.finalized": 0, "invoice.payment_failed": 1, "invoice.paid": 2}
    obj = invoice_object(customer, invoice_id, status, price_id, created, attempts[event_type])
    return build_event(event_type, obj, event_id=event_id, created=created)


class FullSizeStream:
    """The full-size deliveries of a customer population, round-robin, in order."""

    def __init__(self, count: int = 10_000, seed: int = 17, start: int | None = None) -> None:
        self.customers = customers(count, seed)
        rng = random.Random(seed)
        self._order = list(self.customers)
        rng.shuffle(self._order)
        self._rng = random.Random(seed + 1)
        # created times in the past: far enough back for every round the bench takes
        self.start = start if start is not None else int(time.time()) - 60 * 86_400
        self._position = 0

    def events(self) -> Iterator[Json]:
        while True:
            round_, slot = divmod(self._position, len(self._order))
            self._position += 1
            yield delivery(self._order[slot], round_, self.start, self._rng)

    def take(self, count: int) -> list[bytes]:
        """The next `count` deliveries' bodies (compact JSON, as bench/stream.py sends)."""
        produced = self.events()
        return [body(next(produced)) for _ in range(count)]


def body(event: Json) -> bytes:
    return orjson.dumps(event)


def describe(bodies: list[bytes]) -> dict[str, Any]:
    """Sizes and types of a list of deliveries, for the report."""
    types: dict[str, int] = {}
    for raw in bodies:
        kind = orjson.loads(raw)["type"]
        types[kind] = types.get(kind, 0) + 1
    sizes = sorted(len(raw) for raw in bodies)
    return {
        "deliveries": len(bodies),
        "bytes_mean": sum(sizes) / max(1, len(sizes)),
        "bytes_min": sizes[0] if sizes else 0,
        "types": types,
    }
