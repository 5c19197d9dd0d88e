"""The operator commands (reconcile, events replay, mirror resume, erasure): resources,
progress bars, reports."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from raxx_queue.billing.context import BillingContext
from raxx_queue.billing.erasure import EraseRequest, erase_customer
from raxx_queue.billing.reconcile import reconcile_context, reconcile_one
from raxx_queue.billing.reconcile_run import reconcile_all
from raxx_queue.db.budget import ONE_OFF_POOL_SIZE
from raxx_queue.db.pool import Database
from raxx_queue.mirror import destination
from raxx_queue.pacing import Pacer
from raxx_queue.plans import price_tiers
from raxx_queue.settings import ConfigError, Settings
from raxx_queue.stripe_gateway import StripeGateway, build_stripe_gateway
from raxx_queue.webhooks.pipeline import EventContext
from raxx_queue.webhooks.replay import list_events, replay_events


@dataclass
class JobResources:
    db: Database
    stripe: StripeGateway


@asynccontextmanager
async def job_resources(settings: Settings) -> AsyncIterator[JobResources]:
    dsn = settings.database_dsn()
    assert dsn is not None
    stripe = build_stripe_gateway(settings, None)
    if stripe is None:
        raise ConfigError("STRIPE_RESTRICTED_KEY: required to read from Stripe")
    db = Database(dsn, max_size=ONE_OFF_POOL_SIZE, mode=settings.database_pool_mode)
    await db.open()
    try:
        yield JobResources(db, stripe)
    finally:
        await stripe.aclose()
        await db.close()


async def resume_mirror(settings: Settings) -> dict[str, Any]:
    """Re-enable Raptor's mirror endpoint after a 410; the held rows become due at once."""
    dsn = settings.database_dsn()
    assert dsn is not None
    db = Database(dsn, max_size=1, mode=settings.database_pool_mode)
    await db.open()
    try:
        async with db.transaction() as tx:
            resumed, pending = await destination.resume(tx.conn)
    finally:
        await db.close()
    # the running dispatchers find the rows at their next poll (about a second)
    return {"resumed": resumed, "pending": pending}


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=False,
    )


async def run_reconcile(
    settings: Settings, *, queue_customer_id: str | None, restart: bool, rate: float
) -> dict[str, Any]:
    context = reconcile_context(price_tiers(settings), settings.grace_period_days)
    async with job_resources(settings) as resources:
        if queue_customer_id is not None:
            report = await reconcile_one(resources.db, resources.stripe, context, queue_customer_id)
            return report.as_dict()
        # each customer costs three Stripe reads
        pacer = Pacer(rate / 3)
        with _progress() as progress:
            task = progress.add_task("reconcile", total=None)

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = await reconcile_all(
                resources.db,
                resources.stripe,
                context,
                resume=not restart,
                on_progress=advance,
                pace=pacer,
            )
        return report.as_dict()


async def run_replay(
    settings: Settings, *, since_seconds: int, include_delivered: bool
) -> dict[str, Any]:
    context = EventContext(
        price_tiers=price_tiers(settings),
        grace_days=settings.grace_period_days,
        dispute_access=settings.dispute_access,
        source="replay",
    )
    async with job_resources(settings) as resources:
        events = await list_events(
            resources.stripe,
            int(time.time()) - since_seconds,
            undelivered_only=not include_delivered,
        )
        with _progress() as progress:
            task = progress.add_task("replay", total=len(events))

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            report = await replay_events(
                resources.db, resources.stripe, events, context, on_progress=advance
            )
        return report.as_dict()


async def run_erase(
    settings: Settings, *, queue_customer_id: str, stripe_delete: bool
) -> dict[str, Any]:
    """Erase one customer as the Console's route does (actor `console`)."""
    dsn = settings.database_dsn()
    assert dsn is not None
    stripe = build_stripe_gateway(settings, None) if stripe_delete else None
    if stripe_delete and stripe is None:
        raise ConfigError("STRIPE_RESTRICTED_KEY: required to delete the Stripe customer")
    db = Database(dsn, max_size=ONE_OFF_POOL_SIZE, mode=settings.database_pool_mode)
    await db.open()
    try:
        ctx = BillingContext(
            db=db, settings=settings, stripe=stripe, actor="console", request_id=None
        )
        request = EraseRequest(stripe="delete" if stripe_delete else None)
        report = await erase_customer(ctx, queue_customer_id, request)
    finally:
        if stripe is not None:
            await stripe.aclose()
        await db.close()
    return report.model_dump(mode="json")
