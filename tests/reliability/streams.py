"""One shuffled event stream, delivered to real service processes the way Stripe would.

Stripe retries every delivery that was not answered 2xx; `deliver_all` records which
events were acknowledged and `redeliver` sends the rest again until all are.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from raxx_queue.simulator.events import signed
from tests.support import values
from tests.support.database import Conn
from tests.support.event_stream import Event
from tests.support.process import RunningService, run_audit_verify, start_service, wait_until
from tests.support.webhooks import WEBHOOK

TIMEOUT = httpx.Timeout(15.0, connect=2.0)


@dataclass
class Deliveries:
    """What the service answered: per event, every status and outcome it gave."""

    statuses: Counter[int | str] = field(default_factory=Counter)
    acked: dict[str, list[str]] = field(default_factory=dict)
    failed: dict[str, Event] = field(default_factory=dict)
    bodies: list[str] = field(default_factory=list)

    def record(self, event: Event, status: int | str, body: str = "") -> None:
        self.statuses[status] += 1
        if isinstance(status, int) and 200 <= status < 300:
            self.acked.setdefault(event["id"], []).append(json.loads(body)["outcome"])
            self.failed.pop(event["id"], None)
        else:
            self.bodies.append(body)
            if event["id"] not in self.acked:
                self.failed[event["id"]] = event


async def deliver(http: httpx.AsyncClient, event: Event) -> httpx.Response:
    body, header = signed(event, values.WEBHOOK_SECRET)
    return await http.post(
        WEBHOOK, content=body, headers={"Stripe-Signature": header}, timeout=TIMEOUT
    )


async def deliver_all(
    url: str, events: Iterable[Event], result: Deliveries, *, concurrency: int = 8
) -> Deliveries:
    """Send every event, `concurrency` at a time; a transport error counts as not acked."""
    semaphore = asyncio.Semaphore(concurrency)

    async with httpx.AsyncClient(base_url=url) as http:

        async def send(event: Event) -> None:
            async with semaphore:
                try:
                    response = await deliver(http, event)
                except httpx.TransportError as error:
                    result.record(event, type(error).__name__)
                    return
                result.record(event, response.status_code, response.text)

        await asyncio.gather(*(send(event) for event in events))
    return result


async def redeliver(url: str, result: Deliveries) -> None:
    """Stripe's retries: every event not yet acknowledged, until all are (or 5 rounds)."""
    for _ in range(5):
        if not result.failed:
            return
        await deliver_all(url, list(result.failed.values()), result)
    assert not result.failed, f"{len(result.failed)} events never acknowledged"


async def wait_sealed(conn: Conn, timeout: float = 30.0) -> None:
    """Until the service's sealer has sealed every audit row (it runs after commit)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    query = "SELECT count(*) FROM billing_action_log WHERE row_hash IS NULL"
    while await conn.fetchval(query):
        assert loop.time() < deadline, "audit rows still unsealed"
        await asyncio.sleep(0.1)  # another process's sealer: nothing to await


def audit_verify(database_url: str) -> dict[str, Any]:
    """`raxx-queue audit verify`, which must find the chain intact."""
    done = run_audit_verify(database_url)
    assert done.returncode == 0, done.stdout + done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    return report


async def assert_exactly_once(conn: Conn, in_order: list[Event], result: Deliveries) -> None:
    """Every event recorded once, every acknowledged one among them; one audit row per
    applied event and none for the others."""
    recorded = {
        r["event_id"]: r["outcome"]
        for r in await conn.fetch("SELECT event_id, outcome FROM processed_stripe_events")
    }
    assert set(recorded) == {e["id"] for e in in_order}
    assert set(result.acked) <= set(recorded)
    audited = Counter(
        r["event_id"]
        for r in await conn.fetch(
            "SELECT event_id FROM billing_action_log WHERE event_id IS NOT NULL"
        )
    )
    assert max(audited.values()) == 1
    assert set(audited) == {e for e, outcome in recorded.items() if outcome == "applied"}


@contextlib.asynccontextmanager
async def serving(database_url: str, **env: str) -> AsyncIterator[RunningService]:
    """`raxx-queue serve`, waited for without blocking the loop (a proxy may run on it)."""
    service = start_service(database_url, **env)
    try:
        await wait_ready(service.url, process=service.process)
        yield service
    finally:
        if service.process.poll() is None:
            service.process.terminate()
        await asyncio.to_thread(service.process.wait, 30)


def ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/ready", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


async def wait_ready(
    url: str, timeout: float = 60.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    def check() -> bool:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"service exited with {process.returncode}")
        return ready(url)

    await asyncio.to_thread(wait_until, check, timeout, "service ready")


async def connect(url: str) -> Conn:
    conn: Conn = await asyncpg.connect(url)
    return conn
