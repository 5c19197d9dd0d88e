"""Shapes of the mirror: the row Raptor receives and the mirror-sync request."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from raxx_queue.vocabulary import (
    QUEUE_CUSTOMER_ID_PATTERN,
    Access,
    AccessReason,
    PlanTier,
    SubscriptionStatus,
)


class MirrorRow(BaseModel):
    """Exactly the pushed fields (SPEC §6); no PII."""

    model_config = ConfigDict(frozen=True)

    queue_customer_id: str
    # the tier usable now: free unless entitled
    plan_tier: PlanTier
    status: SubscriptionStatus
    current_period_end: datetime | None
    grace_until: datetime | None
    entitled: bool
    # the access policy's answer (docs/access-policy.md); entitled = access in
    # (active, trialing, grace)
    access: Access
    access_reason: AccessReason | None
    feature_locked_at: datetime | None
    version: int
    updated_at: datetime


class MirrorSyncRequest(BaseModel):
    """Either one customer or `all`, never both."""

    model_config = ConfigDict(extra="forbid")

    queue_customer_id: str | None = Field(default=None, pattern=QUEUE_CUSTOMER_ID_PATTERN)
    # strict: 0 or "true" are not booleans
    all: bool = Field(default=False, strict=True)

    @model_validator(mode="after")
    def _one_target(self) -> MirrorSyncRequest:
        if self.all == (self.queue_customer_id is not None):
            raise ValueError("give either queue_customer_id or all=true")
        return self


class MirrorSyncQueued(BaseModel):
    queued: int
