"""Delivery streams for the benchmark: blocks of customer lifecycles as Stripe would send them.

A block of customers' lifecycles (10 mixed events each, tests/support/event_stream.py)
is interleaved at random, keeping each customer's order; then a share of deliveries is
held back past later events of the same customer (out of order), and a share is
delivered a second time later in the block (Stripe's retries: the intended duplicates).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tests.support.event_stream import customer_lifecycle

from raxx_queue.simulator.events import event_body

EVENTS_PER_CUSTOMER = 10


@dataclass(frozen=True)
class Block:
    """The deliveries of customers [first, first + count), and how many are duplicates."""

    first: int
    count: int
    bodies: list[bytes]
    duplicates: int

    @property
    def queue_customer_ids(self) -> list[str]:
        return [f"cust_{k}" for k in range(self.first, self.first + self.count)]


def interleave(lifecycles: list[list[dict[str, Any]]], rng: random.Random) -> list[dict[str, Any]]:
    """A uniformly random merge of the lifecycles, each kept in its own order."""
    slots = [i for i, events in enumerate(lifecycles) for _ in events]
    rng.shuffle(slots)
    cursors = [0] * len(lifecycles)
    merged = []
    for i in slots:
        merged.append(lifecycles[i][cursors[i]])
        cursors[i] += 1
    return merged


def block(
    first: int,
    count: int,
    *,
    seed: int,
    duplicates: float = 0.05,
    disorder: float = 0.10,
) -> Block:
    """The deliveries of one block of customers, with duplicates and late deliveries."""
    rng = random.Random(seed * 1_000_003 + first)
    events = interleave([customer_lifecycle(k) for k in range(first, first + count)], rng)
    # a customer's next event is `count` positions later on average: holding a delivery
    # back by up to twice that often lets a later event of the same customer pass it
    keyed = [
        (i + (rng.uniform(1, 2 * count) if rng.random() < disorder else 0.0), event)
        for i, event in enumerate(events)
    ]
    repeats = rng.sample(range(len(keyed)), int(len(keyed) * duplicates))
    for i in repeats:
        at, event = keyed[i]
        keyed.append((rng.uniform(at, len(keyed)) + 0.5, event))
    keyed.sort(key=lambda pair: pair[0])
    bodies = [event_body(event) for _, event in keyed]
    return Block(first=first, count=count, bodies=bodies, duplicates=len(repeats))


class CustomerBlocks:
    """Hands out consecutive, disjoint blocks of the customer population."""

    def __init__(self, population: int, seed: int) -> None:
        self._population = population
        self._seed = seed
        self._next = 0

    def take(self, count: int) -> Block:
        if self._next + count > self._population:
            raise ValueError(
                f"the bench needs more than {self._population} customers; raise --customers"
            )
        taken = block(self._next, count, seed=self._seed)
        self._next += count
        return taken
