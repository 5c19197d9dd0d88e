"""Building mirror changes in the database and reading what Raptor received."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from raxx_queue.db.locks import lock_stripe_customer
from raxx_queue.db.pool import Transaction
from raxx_queue.mirror.dispatcher import DispatcherConfig
from raxx_queue.mirror.rows import refresh_mirror
from raxx_queue.mirror.signing import MirrorSigner
from raxx_queue.webhook_keys import MIRROR_SECRET_PREFIX, MIRROR_SECRET_SIZES, decode_base64_key
from tests.conftest import AppClient
from tests.peers.raptor_receiver import Push
from tests.support import seed, values
from tests.support.database import Conn

# Timings scaled down so retries and pauses happen within a test.
FAST = DispatcherConfig(
    batch_size=8,
    request_timeout=1.0,
    lease_seconds=5.0,
    poll_interval=0.05,
    retry_base=0.05,
    retry_cap=0.4,
    outage_pause_base=0.05,
    outage_pause_cap=0.2,
    stop_grace=2.0,
    stats_interval=0.0,
)


def signer(*secrets: str) -> MirrorSigner:
    """A signer of these `whsec_` secrets (default: the tests' one)."""
    chosen = secrets or (values.MIRROR_SIGNING_SECRET,)
    return MirrorSigner(
        [decode_base64_key(s, MIRROR_SECRET_PREFIX, MIRROR_SECRET_SIZES) for s in chosen]
    )


EMAIL = "mirror.pii@example.com"
NAME = "Mirror Pii Person"
STREET = "42 Paywall Lane"


def stripe_id(queue_customer_id: str) -> str:
    return f"cus_{queue_customer_id}"


async def add_customer(
    db: Conn, queue_customer_id: str, *, plan_tier: str = "pro", mirror: bool = True
) -> None:
    """A customer with an active subscription (and PII), its mirror row computed."""
    await seed.customer(
        db,
        queue_customer_id,
        stripe_customer_id=stripe_id(queue_customer_id),
        email=EMAIL,
        name=NAME,
    )
    await db.execute(
        "UPDATE billing_customer SET billing_address = $2::jsonb WHERE queue_customer_id = $1",
        queue_customer_id,
        json.dumps({"line1": STREET, "city": "Springfield", "country": "US"}),
    )
    await seed.subscription(
        db, f"sub_{queue_customer_id}", stripe_id(queue_customer_id), plan_tier=plan_tier
    )
    if mirror:
        async with db.transaction():
            await refresh_mirror(Transaction(db), queue_customer_id)


async def change(db: Conn, queue_customer_id: str) -> int:
    """Commit a subscription change that bumps the mirror version; the new version."""
    async with db.transaction():
        await lock_stripe_customer(db, stripe_id(queue_customer_id))
        await db.execute(
            "UPDATE billing_subscription SET current_period_end = current_period_end"
            " + interval '1 day' WHERE stripe_customer_id = $1",
            stripe_id(queue_customer_id),
        )
        result = await refresh_mirror(Transaction(db), queue_customer_id)
    assert result.changed
    assert result.version is not None
    return result.version


async def versions(db: Conn) -> dict[str, int]:
    rows = await db.fetch("SELECT queue_customer_id, version FROM billing_subscription_mirror")
    return {row["queue_customer_id"]: row["version"] for row in rows}


async def mirror_state(db: Conn, queue_customer_id: str) -> dict[str, Any]:
    row = await db.fetchrow(
        "SELECT * FROM billing_subscription_mirror WHERE queue_customer_id = $1", queue_customer_id
    )
    assert row is not None
    return dict(row)


def nudge(client: AppClient) -> None:
    """What a committing request does: wake the in-process dispatcher."""
    client.services.wakeups.mirror.nudge()


def received(pushes: list[Push], queue_customer_id: str) -> list[int]:
    """Versions of the customer's row in arrival order, answered or not."""
    return [
        row["version"]
        for push in pushes
        for row in push.rows
        if row["queue_customer_id"] == queue_customer_id
    ]


def accepted_version(queue_customer_id: str, version: int) -> Callable[[list[Push]], bool]:
    def predicate(pushes: list[Push]) -> bool:
        return any(
            row["queue_customer_id"] == queue_customer_id and row["version"] == version
            for push in pushes
            if push.accepted
            for row in push.rows
        )

    return predicate


def holds_versions(expected: dict[str, int]) -> Callable[[list[Push]], bool]:
    """Raptor has applied (at least) these versions."""

    def predicate(pushes: list[Push]) -> bool:
        newest: dict[str, int] = {}
        for push in pushes:
            if push.accepted:
                for row in push.rows:
                    key = row["queue_customer_id"]
                    newest[key] = max(newest.get(key, 0), row["version"])
        return all(newest.get(key, 0) >= version for key, version in expected.items())

    return predicate


def assert_in_order(pushes: list[Push]) -> None:
    """No customer's row arrived with an older version after a newer one."""
    customers = {row["queue_customer_id"] for push in pushes for row in push.rows}
    for customer in customers:
        seen = received(pushes, customer)
        assert seen == sorted(seen), (customer, seen)
