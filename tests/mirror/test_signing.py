"""Signed pushes: Raptor verifies every one with the Standard Webhooks reference library."""

from __future__ import annotations

import base64
from collections import Counter

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import AppClient
from tests.mirror.conftest import MirrorApp
from tests.mirror.steps import (
    accepted_version,
    add_customer,
    change,
    holds_versions,
    nudge,
    versions,
)
from tests.peers.raptor_receiver import Push, RaptorReceiver
from tests.support import values
from tests.support.database import Conn
from tests.support.logs import CapturedLogs

OLD, NEW = values.MIRROR_SIGNING_SECRET, values.NEW_MIRROR_SIGNING_SECRET
CUSTOMERS = [f"cust_sig_{n}" for n in range(4)]


def ids_of(pushes: list[Push], customer: str) -> list[tuple[int, str]]:
    return [
        (push.body["version"], push.headers["webhook-id"])
        for push in pushes
        if push.rows and push.rows[0]["queue_customer_id"] == customer
    ]


async def test_every_push_is_verified_by_the_reference_library(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver, captured_logs: CapturedLogs
) -> None:
    for customer in CUSTOMERS:
        await add_customer(db, customer)
    async with mirror_app() as client:
        for customer in CUSTOMERS:
            await change(db, customer)
        nudge(client)
        await receiver.await_for(holds_versions(await versions(db)))
    pushes = receiver.pushes
    assert pushes
    assert all(push.accepted and push.verified_by == "current" for push in pushes)
    for push in pushes:
        row = push.body
        assert push.headers["webhook-id"] == f"mirror_{row['queue_customer_id']}_v{row['version']}"
        assert push.headers["webhook-timestamp"].isdigit()
        assert push.headers["webhook-signature"].startswith("v1,")
        assert push.headers["authorization"] == f"Bearer {values.MIRROR_TOKEN}"  # kept
    secret = values.MIRROR_SIGNING_SECRET
    captured_logs.assert_free_of([secret, secret.removeprefix("whsec_")])


async def test_a_retry_carries_the_same_id_and_is_signed_afresh(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    await add_customer(db, "cust_retry")
    receiver.fail(503, times=2)
    async with mirror_app():
        await receiver.await_for(lambda pushes: any(p.accepted for p in pushes))
    attempts = ids_of(receiver.pushes, "cust_retry")
    assert [status for status in (p.status for p in receiver.pushes)] == [503, 503, 200]
    assert attempts == [(1, "mirror_cust_retry_v1")] * 3
    assert all(push.verified_by == "current" for push in receiver.pushes)


async def test_a_rotation_mid_stream_refuses_nothing_and_loses_nothing(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    """Queue signs with old → old and new → new; Raptor moves from old to new while
    Queue signs with both, in the middle of a stream of changes."""
    for customer in CUSTOMERS:
        await add_customer(db, customer)
    assert receiver.signatures is not None
    receiver.signatures.accept({"old": OLD})
    phases: list[tuple[str, int]] = []  # (phase, pushes received before it)

    async def stream(changes: int, client: AppClient | None = None) -> None:
        """Changes one after another; with a running Queue, each pushed before the next."""
        for number in range(changes):
            customer = CUSTOMERS[number % len(CUSTOMERS)]
            version = await change(db, customer)
            if client is not None:
                nudge(client)
                await receiver.await_for(accepted_version(customer, version))

    async def delivered() -> None:
        await receiver.await_for(holds_versions(await versions(db)), timeout=10)

    phases.append(("old", len(receiver.pushes)))
    async with mirror_app(raptor_mirror_signing_secret=OLD) as client:
        await delivered()
        await stream(8, client)
    await stream(4)  # committed while Queue restarts with both secrets

    phases.append(("both", len(receiver.pushes)))
    async with mirror_app(raptor_mirror_signing_secret=f"{OLD},{NEW}") as client:
        await delivered()
        await stream(8, client)
        receiver.signatures.accept({"new": NEW})  # Raptor's side moves on mid-stream
        phases.append(("both, Raptor on new", len(receiver.pushes)))
        await stream(8, client)
    await stream(4)  # committed while Queue restarts with the new secret only

    phases.append(("new", len(receiver.pushes)))
    async with mirror_app(raptor_mirror_signing_secret=NEW) as client:
        await delivered()
        await stream(8, client)

    pushes = receiver.pushes
    assert all(push.accepted for push in pushes), Counter(p.status for p in pushes)
    assert {key: row["version"] for key, row in receiver.rows.items()} == await versions(db)
    bounds = [start for _, start in phases] + [len(pushes)]
    counts = {
        name: Counter(push.verified_by for push in pushes[start:end])
        for (name, start), end in zip(phases, bounds[1:], strict=True)
    }
    print(f"\nrotation: {len(pushes)} pushes, all verified by standardwebhooks: {counts}")
    assert set(counts["old"]) == set(counts["both"]) == {"old"}
    assert set(counts["both, Raptor on new"]) == set(counts["new"]) == {"new"}
    both = pushes[phases[1][1] : phases[3][1]]
    assert all(len(p.headers["webhook-signature"].split(" ")) == 2 for p in both)


async def test_an_ed25519_key_adds_a_v1a_signature(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    seed = base64.b64decode(values.MIRROR_SIGNING_KEY.removeprefix("whsk_"))
    public = (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    assert receiver.signatures is not None
    receiver.signatures.accept({}, public_key=public)  # Raptor holds only the public key
    await add_customer(db, "cust_ed")
    async with mirror_app(raptor_mirror_signing_key=values.MIRROR_SIGNING_KEY):
        await receiver.await_for(lambda pushes: any(p.accepted for p in pushes))
    [push] = receiver.pushes
    assert push.verified_by == "v1a"
    assert [part.split(",")[0] for part in push.headers["webhook-signature"].split(" ")] == [
        "v1",
        "v1a",
    ]


async def test_a_push_signed_with_a_secret_raptor_lacks_is_refused_and_kept(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    """The check is real: a wrong secret is a 401, the row stays pending, and it arrives
    once Raptor holds the secret."""
    await add_customer(db, "cust_wrong")
    assert receiver.signatures is not None
    receiver.signatures.accept({"old": OLD})
    async with mirror_app(raptor_mirror_signing_secret=NEW):
        await receiver.await_for(lambda pushes: any(p.status == 401 for p in pushes))
        assert await db.fetchval("SELECT pushed_version FROM billing_subscription_mirror") == 0
        receiver.signatures.accept({"new": NEW})
        await receiver.await_for(lambda pushes: any(p.accepted for p in pushes), timeout=10)
    refused = [p for p in receiver.pushes if p.status == 401]
    assert refused
    assert all(p.verified_by is None for p in refused)
    assert receiver.rows["cust_wrong"]["version"] == 1
