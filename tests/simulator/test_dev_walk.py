"""`raxx-queue dev` as a new user meets it: the guided walk it prints, and the SRE smokes.

`raxx-queue dev` runs as a process (on a fresh, migrated database, to keep the test
short; the README's path with the embedded Postgres is tests/test_embedded_run.py),
with the Stripe simulator and the Raptor sink. The three commands it prints are run as
printed, in a shell; every check is over HTTP or the commands' output.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.database import REPO, create_database, drop_database, migrate
from tests.support.process import free_port

START_SECONDS = 90
# the simulated browser confirms a payment ~0.3 s after the subscribe answer; its webhooks
# then need to reach Queue: a bound a loaded machine keeps
SETTLE_SECONDS = 30


@dataclass
class DevService:
    proc: subprocess.Popen[str]
    url: str
    env: dict[str, str]
    lines: list[str] = field(default_factory=list)

    def output(self) -> str:
        return "\n".join(self.lines)

    def token(self, caller: str) -> str:
        line = next(line for line in self.lines if line.strip().startswith(f"{caller} token:"))
        return line.split(":", 1)[1].strip()

    def walk(self) -> list[str]:
        """The commands of the printed walk, continuation lines joined."""
        commands: list[str] = []
        pending = ""
        start = next(i for i, line in enumerate(self.lines) if line.startswith("Walk a customer"))
        for line in self.lines[start:]:
            text = line.strip()
            if pending:
                pending += " " + text.removesuffix("\\").strip()
                if not text.endswith("\\"):
                    commands.append(pending)
                    pending = ""
            elif text.startswith(("curl ", "QUEUE_DATA_DIR=", ".venv/bin/raxx-queue")):
                if text.endswith("\\"):
                    pending = text.removesuffix("\\").strip()
                else:
                    commands.append(text)
        return commands

    def run(self, command: str) -> str:
        """A printed command, in a shell, from the repository (as the guide says)."""
        result = subprocess.run(
            ["bash", "-c", command],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout


def _wait(check: Callable[[], bool], what: str, service: DevService) -> None:
    """Poll a condition a process shows no other way; bounded, and says what it saw."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {SETTLE_SECONDS} s; dev printed:\n{service.output()}")


@pytest.fixture
async def dev(pg_server: str, tmp_path: Path) -> AsyncIterator[DevService]:
    url = await create_database(pg_server, prefix="queue_dev_walk")
    migrate(url)
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("QUEUE_", "STRIPE_", "RAPTOR_")) and k != "TEST_DATABASE_URL"
    }
    env.update(
        DATABASE_URL=url,
        QUEUE_DATA_DIR=str(tmp_path / "data"),
        PORT=str(port),
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "raxx_queue.cli", "dev"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    service = DevService(proc, f"http://127.0.0.1:{port}", env)
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(
        target=lambda: service.lines.extend(line.rstrip("\n") for line in stdout), daemon=True
    )
    reader.start()
    try:
        deadline = time.monotonic() + START_SECONDS
        while not any(line.startswith("Walk a customer") for line in service.lines):
            assert proc.poll() is None, service.output()
            assert time.monotonic() < deadline, service.output()
            time.sleep(0.1)
        _wait(lambda: _status(f"{service.url}/ready") == 200, "ready", service)
        yield service
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=10)
        stdout.close()
        await drop_database(pg_server, url)


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.TransportError:
        return None


def _subscription(dev: DevService, customer: str) -> dict[str, Any]:
    response = httpx.get(
        f"{dev.url}/api/v1/billing/subscriptions/{customer}",
        headers={"Authorization": f"Bearer {dev.token('raptor')}"},
        timeout=5,
    )
    body: dict[str, Any] = response.json() if response.status_code == 200 else {}
    return body


def test_the_guided_walk_from_subscribe_to_suspended(dev: DevService) -> None:
    subscribe, fail, advance = dev.walk()
    assert '"payment_method_id": "pm_card_visa"' in subscribe

    answer = dev.run(subscribe)
    assert '"status":"incomplete"' in answer  # Stripe's answer; the browser confirms next
    _wait(lambda: _subscription(dev, "cust_demo").get("status") == "active", "active", dev)
    assert _subscription(dev, "cust_demo")["entitled"] is True

    failed = dev.run(fail)
    assert "invoice.payment_failed" in failed
    assert "-> Queue 200 applied" in failed
    assert "status=past_due entitled=True grace_until=" in failed
    grace = _subscription(dev, "cust_demo")
    assert (grace["status"], grace["entitled"]) == ("past_due", True)

    suspended = dev.run(advance)
    assert "its clock +8 days" in suspended
    assert suspended.count("invoice.payment_failed") == 3  # Stripe's retries
    assert "status=unpaid entitled=False" in suspended
    assert _subscription(dev, "cust_demo")["entitled"] is False

    # the Raptor sink printed the rows Queue pushed, the suspension among them
    _wait(
        lambda: any("raptor  cust_demo" in x and "entitled=False" in x for x in dev.lines),
        "the sink's line",
        dev,
    )


def test_the_sre_smoke_scenarios(dev: DevService) -> None:
    raptor = {"Authorization": f"Bearer {dev.token('raptor')}"}
    console = {"Authorization": f"Bearer {dev.token('console')}"}

    def subscribe(customer: str, card: str) -> httpx.Response:
        body = {
            "queue_customer_id": customer,
            "email": f"{customer}@example.com",
            "plan_tier": "pro",
            "payment_method_id": card,
        }
        return httpx.post(f"{dev.url}/api/v1/billing/subscribe", json=body, headers=raptor)

    created = httpx.post(
        f"{dev.url}/api/v1/billing/customers",
        json={"queue_customer_id": "sre_1", "email": "sre_1@example.com"},
        headers=console,
    )
    # create-or-return: 200 when the simulator's `customer.created` webhook for the Stripe
    # customer this call made reached Queue before the call's own commit
    assert created.status_code in (200, 201)
    assert created.json()["stripe_customer_id"].startswith("cus_")

    # 4242 4242 4242 4242 → active
    assert subscribe("sre_1", "pm_card_visa").status_code == 201
    _wait(lambda: _subscription(dev, "sre_1").get("status") == "active", "active", dev)

    # 4000 0000 0000 0002 → declined
    declined = subscribe("sre_2", "pm_card_chargeDeclined")
    assert declined.status_code == 402
    assert declined.json()["error"]["code"] == "CARD_DECLINED"

    # cancel
    canceled = _simulate(dev, "cancel", "--customer", "sre_1")
    assert "customer.subscription.deleted" in canceled
    assert "status=canceled entitled=False" in canceled

    # the portal
    portal = httpx.post(
        f"{dev.url}/api/v1/billing/portal", json={"queue_customer_id": "sre_1"}, headers=raptor
    )
    assert portal.status_code == 200
    assert portal.json()["url"].startswith("https://")


def _simulate(dev: DevService, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "raxx_queue.cli", "simulate", *args],
        env=dev.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def _subscribed(dev: DevService, customer: str) -> None:
    """The customer subscribes with a card that works, and Queue has it active."""
    body = {
        "queue_customer_id": customer,
        "email": f"{customer}@example.com",
        "plan_tier": "pro",
        "payment_method_id": "pm_card_visa",
    }
    raptor = {"Authorization": f"Bearer {dev.token('raptor')}"}
    answer = httpx.post(f"{dev.url}/api/v1/billing/subscribe", json=body, headers=raptor)
    assert answer.status_code == 201
    _wait(lambda: _subscription(dev, customer).get("status") == "active", "active", dev)


def test_dispute_and_paused_collection_scenarios(dev: DevService) -> None:
    """`simulate dispute` suspends access until the dispute is won; `pause-collection`
    keeps the period already paid, and Stripe's renewal while paused bills nothing."""
    for customer in ("disp_1", "pause_1"):
        _subscribed(dev, customer)

    opened = _simulate(dev, "dispute", "--customer", "disp_1")
    assert "charge.dispute.created" in opened
    assert "-> Queue 200 applied" in opened
    assert "entitled=False" in opened
    assert "access=suspended access_reason=dispute" in opened
    held = _subscription(dev, "disp_1")
    assert (held["status"], held["access"], held["access_reason"]) == (
        "active",
        "suspended",
        "dispute",
    )
    won = _simulate(dev, "dispute", "--customer", "disp_1", "--close", "won")
    assert "charge.dispute.closed" in won
    assert "entitled=True" in won
    assert "access=active" in won
    assert _subscription(dev, "disp_1")["entitled"] is True

    paused = _simulate(dev, "pause-collection", "--customer", "pause_1")
    assert "customer.subscription.updated" in paused
    # the period already paid is kept
    assert "entitled=True" in paused
    assert "access=active" in paused
    renewed = _simulate(dev, "advance", "--days", "31", "--customer", "pause_1")
    # both renew; disp_1's invoice is finalized and paid, pause_1's stays a draft
    assert renewed.count("invoice.created") == 2
    assert renewed.count("invoice.finalized") == 1
    resumed = _simulate(dev, "pause-collection", "--customer", "pause_1", "--resume")
    assert "customer.subscription.updated" in resumed
    assert _subscription(dev, "pause_1")["access"] == "active"
    # Stripe's clock is 31 days ahead now, its events still in real time: a customer who
    # subscribes now becomes active all the same (its webhooks are not taken as stale)
    _subscribed(dev, "late_1")
