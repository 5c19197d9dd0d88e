"""events replay: undelivered events from Stripe's Events API, applied once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time

import httpx
import pytest

from raxx_queue.plans import price_tiers
from raxx_queue.settings import ConfigError
from raxx_queue.simulator.double import StripeDouble
from raxx_queue.simulator.server import StripeServer
from raxx_queue.webhooks.pipeline import EventContext
from raxx_queue.webhooks.replay import list_events, parse_since, replay_events
from tests.conftest import AppClient
from tests.support import values
from tests.support.database import Conn
from tests.support.process import run_cli, service_env
from tests.support.webhooks import deliver_ok, invoice_event, subscription_event


def _missed(double: StripeDouble) -> list[str]:
    now = int(time.time())
    missed = [
        subscription_event("customer.subscription.created", created=now - 300),
        invoice_event("invoice.payment_failed", status="open", created=now - 200),
        subscription_event("customer.subscription.updated", status="past_due", created=now - 100),
    ]
    for event in missed:
        double.add_event(event, delivered=False)
    double.add_event(
        subscription_event("customer.subscription.created", sub="sub_delivered", created=now - 50),
        delivered=True,
    )
    return [str(e["id"]) for e in missed]


async def test_replay_applies_missed_events_once(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    missed = _missed(stripe_double)
    services = client.services
    context = EventContext(
        price_tiers=price_tiers(services.settings), grace_days=7, source="replay"
    )
    events = await list_events(services.stripe, int(time.time()) - 3 * 86_400)
    assert [e["id"] for e in events] == missed

    report = await replay_events(services.db, services.stripe, events, context)
    assert report.as_dict() == {
        "listed": 3,
        "already_processed": 0,
        "outcomes": {"applied": 3},
    }
    rows = await db.fetch("SELECT event_id, source FROM processed_stripe_events ORDER BY 1")
    assert {r["event_id"] for r in rows} == set(missed)
    assert {r["source"] for r in rows} == {"replay"}
    mirror = await db.fetchrow("SELECT status, entitled FROM billing_subscription_mirror")
    assert dict(mirror) == {"status": "past_due", "entitled": True}

    audit_rows = await db.fetchval("SELECT count(*) FROM billing_action_log")
    rerun = await replay_events(services.db, services.stripe, events, context)
    assert rerun.as_dict() == {"listed": 3, "already_processed": 3, "outcomes": {}}
    assert await db.fetchval("SELECT count(*) FROM billing_action_log") == audit_rows


async def test_replay_skips_what_the_webhook_already_applied(
    client: AppClient, db: Conn, stripe_double: StripeDouble
) -> None:
    _missed(stripe_double)
    services = client.services
    events = await list_events(services.stripe, int(time.time()) - 86_400)
    first = stripe_double.get(str(events[0]["id"]))
    await deliver_ok(client, first)  # the first one did arrive after all
    context = EventContext(
        price_tiers=price_tiers(services.settings), grace_days=7, source="replay"
    )
    report = await replay_events(services.db, services.stripe, events, context)
    assert report.already_processed == 1
    assert report.outcomes == {"applied": 2}


def test_since_parsing() -> None:
    assert parse_since("3d") == 3 * 86_400
    assert parse_since("6h") == 6 * 3600
    for bad in ("3", "d", "31d", "0h", "-1d", "3 days"):
        with pytest.raises(ConfigError):
            parse_since(bad)


@pytest.mark.slow
async def test_cli_events_replay(
    client: httpx.AsyncClient, db: Conn, stripe_double: StripeDouble, clean_db: str
) -> None:
    missed = _missed(stripe_double)
    with StripeServer(stripe_double) as server:
        env = {
            **os.environ,
            **service_env(clean_db, 8000),
            "STRIPE_API_BASE": server.url,
            "STRIPE_RESTRICTED_KEY": values.STRIPE_KEY,
        }

        def run() -> subprocess.CompletedProcess[str]:
            return run_cli("events", "replay", "--since", "3d", env=env)

        # in a thread: the app under test keeps serving (its sealer) meanwhile
        first = await asyncio.to_thread(run)
        second = await asyncio.to_thread(run)
    assert first.returncode == 0, first.stderr
    out = json.loads(first.stdout[first.stdout.index("{") :])
    assert out == {"listed": 3, "already_processed": 0, "outcomes": {"applied": 3}}
    again = json.loads(second.stdout[second.stdout.index("{") :])
    assert again["already_processed"] == 3
    assert again["outcomes"] == {}
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == len(missed)
