"""POST /api/internal/billing/reconcile (Console)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from raxx_queue.api.deps import Operator, ServicesDep
from raxx_queue.billing.reconcile import reconcile_context, reconcile_one
from raxx_queue.billing.reconcile_run import DEFAULT_READS_PER_SECOND, ROUTE_BOUNDS, reconcile_all
from raxx_queue.errors import error_responses
from raxx_queue.pacing import Pacer
from raxx_queue.plans import price_tiers
from raxx_queue.stripe_errors import STRIPE_ERROR_STATUSES, StripeNotConfigured
from raxx_queue.vocabulary import QUEUE_CUSTOMER_ID_PATTERN

router = APIRouter(
    prefix="/api/internal/billing",
    tags=["reconcile"],
    responses=error_responses(401, 403, 409, 413, *STRIPE_ERROR_STATUSES),
)


class ReconcileRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue_customer_id: str | None = Field(default=None, pattern=QUEUE_CUSTOMER_ID_PATTERN)
    all: Literal[True] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> ReconcileRequest:
        if (self.queue_customer_id is None) == (self.all is None):
            raise ValueError("give either queue_customer_id or all: true")
        return self


@router.post("/reconcile")
async def reconcile(
    body: ReconcileRequest, _caller: Operator, services: ServicesDep
) -> dict[str, Any]:
    """Re-read from Stripe and repair drift, as actor `reconcile`.

    `all`: one run at a time with the CLI's (409 `RECONCILE_RUNNING` while one runs),
    paced like it, resumed from its checkpoint, and bounded (200 customers or 20 s):
    `complete` false and `remaining` say that another call goes on from there."""
    if services.stripe is None:
        raise StripeNotConfigured()
    settings = services.settings
    context = reconcile_context(price_tiers(settings), settings.grace_period_days)
    if body.queue_customer_id is not None:
        report = await reconcile_one(services.db, services.stripe, context, body.queue_customer_id)
    else:
        report = await reconcile_all(
            services.db,
            services.stripe,
            context,
            bounds=ROUTE_BOUNDS,
            pace=Pacer(DEFAULT_READS_PER_SECOND / 3),
        )
    return report.as_dict()
