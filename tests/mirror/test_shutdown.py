"""Shutdown: a push hanging in Raptor is abandoned within the grace, its lease given back."""

from __future__ import annotations

import time
from dataclasses import replace

from tests.mirror.conftest import MirrorApp
from tests.mirror.steps import FAST, add_customer, mirror_state
from tests.peers.raptor_receiver import RaptorReceiver
from tests.support.database import Conn


async def test_shutdown_while_a_push_hangs_ends_within_the_grace(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    await add_customer(db, "cust_1")
    config = replace(FAST, request_timeout=20.0, lease_seconds=60.0, stop_grace=0.5)
    receiver.hang()
    async with mirror_app(config=config):
        await receiver.await_for(lambda pushes: len(pushes) == 1)
        leased = await mirror_state(db, "cust_1")
        assert leased["push_lease_until"] is not None
        stopping = time.monotonic()
    assert time.monotonic() - stopping < config.shutdown_grace + 1.5
    state = await mirror_state(db, "cust_1")
    # still to be pushed, and free for the next process to take at once
    assert (state["pushed_version"], state["push_lease_until"]) == (0, None)
    assert state["push_attempts"] == 0


async def test_shutdown_lets_a_push_in_flight_finish(
    db: Conn, mirror_app: MirrorApp, receiver: RaptorReceiver
) -> None:
    await add_customer(db, "cust_1")
    receiver.hang(times=1)
    async with mirror_app():
        await receiver.await_for(lambda pushes: len(pushes) == 1)
        receiver.release()  # Raptor answers while the app is shutting down
    state = await mirror_state(db, "cust_1")
    assert state["pushed_version"] == 1


async def test_idle_shutdown_is_prompt(mirror_app: MirrorApp) -> None:
    async with mirror_app(config=replace(FAST, poll_interval=30.0)):
        stopping = time.monotonic()
    assert time.monotonic() - stopping < 0.5
