"""A flood of refused requests cannot flood the logs or Sentry (finding 4): log lines of
refused anonymous requests are capped per source and overall, security events per kind;
the rejection counter stays exact. The caps' clock is frozen, so no refill happens
while a test runs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import sentry_sdk
from prometheus_client import REGISTRY

from raxx_queue.log_limits import REFUSED_REQUEST_LINES, SECURITY_EVENTS
from raxx_queue.sentry import init_sentry
from tests.conftest import make_settings
from tests.support import values
from tests.support.logs import CapturedLogs
from tests.support.webhooks import WEBHOOK
from tests.test_sentry import KeptEnvelopes

ATTACKER = "203.0.113.7"
BYSTANDER = "198.51.100.9"
# well formed, but a week old and signed with no configured secret: `too_old`
FORGED = "t=1700000000,v1=" + "0" * 64


class FrozenClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FrozenClock:
    frozen = FrozenClock()
    monkeypatch.setattr(REFUSED_REQUEST_LINES, "clock", frozen)
    monkeypatch.setattr(SECURITY_EVENTS, "clock", frozen)
    return frozen


@pytest.fixture
def sentry_events(clean_db: str) -> Iterator[None]:
    """Sentry with a transport that keeps what it would have sent."""
    KeptEnvelopes.envelopes.clear()
    init_sentry(
        make_settings(clean_db, sentry_dsn="https://public@sentry.invalid/1"),
        transport=KeptEnvelopes,
    )
    yield
    sentry_sdk.get_client().close()
    sentry_sdk.init()


def _sentry_reasons() -> list[str]:
    sentry_sdk.flush()
    events = [e for env in KeptEnvelopes.envelopes if (e := env.get_event()) is not None]
    return [e["tags"]["reason"] for e in events if e.get("tags", {}).get("security")]


def _rejections_counted() -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == "queue_webhook_signature_failures":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


async def _forge(client: httpx.AsyncClient, source: str) -> None:
    response = await client.post(
        WEBHOOK,
        content=b"{}",
        headers={"Stripe-Signature": FORGED, "X-Forwarded-For": f"10.9.9.9, {source}"},
    )
    assert response.status_code == 400


def _lines(logs: CapturedLogs, event: str) -> list[dict[str, object]]:
    return [e for e in logs.entries if e.get("event") == event]


async def test_a_flood_from_one_source_is_capped_and_counted_exactly(
    client: httpx.AsyncClient,
    captured_logs: CapturedLogs,
    sentry_events: None,
    clock: FrozenClock,
) -> None:
    before = _rejections_counted()
    for _ in range(300):
        await _forge(client, ATTACKER)

    assert _rejections_counted() - before == 300
    rejected = _lines(captured_logs, "webhook_rejected")
    refused = [e for e in _lines(captured_logs, "request") if e["status"] == 400]
    # 20 lines for the source: a rejection and its request line each
    assert (len(rejected), len(refused)) == (10, 10)
    assert _sentry_reasons() == ["too_old"] * 5

    # another source is not silenced by the first, and says how much was left out
    await _forge(client, BYSTANDER)
    [told] = [e for e in _lines(captured_logs, "webhook_rejected") if e["suppressed"]]
    assert told["suppressed"] == 580  # the attacker's 290 requests, two lines each

    # a known caller's refusal is always logged
    known = await client.get("/api/v1/billing/customers/cust_none", headers=values.CONSOLE)
    assert known.status_code == 404
    assert any(e.get("status") == 404 for e in _lines(captured_logs, "request"))

    # the source's allowance comes back with time
    clock.now += 60
    count = len(_lines(captured_logs, "webhook_rejected"))
    await _forge(client, ATTACKER)
    assert len(_lines(captured_logs, "webhook_rejected")) == count + 1
    assert len(_sentry_reasons()) == 6


async def test_varying_the_source_gains_nothing_past_the_overall_cap(
    client: httpx.AsyncClient, captured_logs: CapturedLogs, clock: FrozenClock
) -> None:
    before = _rejections_counted()
    for n in range(300):
        await _forge(client, f"192.0.2.{n % 250}-{n}")
    assert _rejections_counted() - before == 300
    lines = _lines(captured_logs, "webhook_rejected") + [
        e for e in _lines(captured_logs, "request") if e["status"] == 400
    ]
    assert len(lines) == 200  # the overall burst; without the cap: 600
