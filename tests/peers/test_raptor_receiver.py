"""The Raptor mirror receiver: records, rejects, fails, hangs and recovers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from .raptor_receiver import MIRROR_PATH, RaptorReceiver

TOKEN = "raptor-test-token"


@pytest.fixture
def receiver() -> Iterator[RaptorReceiver]:
    with RaptorReceiver(token=TOKEN) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        yield client


def _row(customer: str, version: int) -> dict[str, Any]:
    return {"queue_customer_id": customer, "plan_tier": "pro", "entitled": True, "version": version}


def _answered(count: int) -> Any:
    # answered_at is set once the answer is written (status, just before it)
    return lambda pushes: sum(push.answered_at is not None for push in pushes) >= count


async def test_records_pushes_and_applies_newer_versions(
    receiver: RaptorReceiver, http: httpx.AsyncClient
) -> None:
    assert receiver.url.startswith("http://127.0.0.1:")
    assert receiver.url.endswith(MIRROR_PATH)

    for version in (2, 1):
        response = await http.post(receiver.url, json=_row("qc_1", version))
        assert response.status_code == 200

    first, second = receiver.pushes
    assert first.body == _row("qc_1", 2)
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.received_at <= second.received_at
    assert receiver.rows == {"qc_1": _row("qc_1", 2)}


async def test_wrong_token_is_rejected_and_recorded(
    receiver: RaptorReceiver, http: httpx.AsyncClient
) -> None:
    response = await http.post(
        receiver.url, json=_row("qc_1", 1), headers={"Authorization": "Bearer nope"}
    )

    assert response.status_code == 401
    [push] = receiver.pushes
    assert push.rejected
    assert not push.authorized
    assert receiver.rows == {}


async def test_fails_for_the_next_pushes_then_accepts(
    receiver: RaptorReceiver, http: httpx.AsyncClient
) -> None:
    receiver.fail(500, times=2)

    statuses = [
        (await http.post(receiver.url, json=_row("qc_1", n))).status_code for n in (1, 2, 3)
    ]

    assert statuses == [500, 500, 200]
    assert [push.accepted for push in receiver.pushes] == [False, False, True]


async def test_fails_until_recovered(receiver: RaptorReceiver, http: httpx.AsyncClient) -> None:
    receiver.fail(503)
    for _ in range(3):
        assert (await http.post(receiver.url, json=_row("qc_1", 1))).status_code == 503

    receiver.recover()

    assert (await http.post(receiver.url, json=_row("qc_1", 1))).status_code == 200


async def test_hang_holds_until_released(receiver: RaptorReceiver, http: httpx.AsyncClient) -> None:
    receiver.hang(times=1)
    pending = asyncio.create_task(http.post(receiver.url, json=_row("qc_1", 1)))

    pushes = await receiver.await_for(lambda pushes: len(pushes) == 1)
    assert pushes[0].held
    assert not pending.done()
    receiver.release()

    assert (await pending).status_code == 200
    [push] = await receiver.await_for(_answered(1))
    assert push.accepted
    assert push.answered_at is not None


async def test_hang_lets_the_client_time_out_then_recovers(receiver: RaptorReceiver) -> None:
    receiver.hang()
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(headers=headers, timeout=0.2) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await impatient.post(receiver.url, json=_row("qc_1", 1))

    receiver.recover()

    async with httpx.AsyncClient(headers=headers) as patient:
        assert (await patient.post(receiver.url, json=_row("qc_1", 2))).status_code == 200
    await receiver.await_for(_answered(2))
    assert receiver.rows["qc_1"]["version"] == 2


def test_wait_for_times_out_with_what_it_saw(receiver: RaptorReceiver) -> None:
    with pytest.raises(TimeoutError, match="condition not met"):
        receiver.wait_for(lambda pushes: bool(pushes), timeout=0.05)


def test_batch_bodies_are_understood(receiver: RaptorReceiver) -> None:
    rows = [_row("qc_1", 1), _row("qc_2", 4)]
    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        assert client.post(receiver.url, json={"rows": rows}).json() == {"applied": 2}

    [push] = receiver.wait_for(_answered(1))
    assert push.rows == rows
    assert set(receiver.rows) == {"qc_1", "qc_2"}


def test_stop_answers_held_requests_and_returns() -> None:
    receiver = RaptorReceiver(token=TOKEN).start()
    receiver.hang()

    def stop_once_held() -> None:
        receiver.wait_for(bool)
        receiver.stop()

    stopper = threading.Thread(target=stop_once_held)
    stopper.start()

    with httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"}) as client:
        response = client.post(receiver.url, json=_row("qc_1", 1))
    stopper.join()

    assert response.status_code == 503
