"""Shapes of the mirror: the row Raptor receives, the mirror-sync request, the digest."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from raxx_queue.mirror.digest import MAX_BUCKETS, is_bucket_count
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


def _power_of_two(value: int) -> int:
    if not is_bucket_count(value):
        raise ValueError(f"must be a power of two from 1 to {MAX_BUCKETS}")
    return value


BucketCount = Annotated[int, AfterValidator(_power_of_two)]


class MirrorSyncRequest(BaseModel):
    """One customer, `all`, or one bucket of the digest (`bucket` of `buckets`)."""

    model_config = ConfigDict(extra="forbid")

    queue_customer_id: str | None = Field(default=None, pattern=QUEUE_CUSTOMER_ID_PATTERN)
    # strict: 0 or "true" are not booleans
    all: bool = Field(default=False, strict=True)
    bucket: int | None = Field(default=None, ge=0, strict=True)
    buckets: BucketCount | None = Field(default=None, strict=True)

    @model_validator(mode="after")
    def _one_target(self) -> MirrorSyncRequest:
        targets = (self.queue_customer_id is not None, self.all, self.bucket is not None)
        if sum(targets) != 1:
            raise ValueError("give one of queue_customer_id, all=true, or bucket with buckets")
        if (self.bucket is None) != (self.buckets is None):
            raise ValueError("bucket and buckets go together")
        if self.bucket is not None and self.buckets is not None and self.bucket >= self.buckets:
            raise ValueError("bucket must be below buckets")
        return self


class MirrorSyncQueued(BaseModel):
    queued: int


class MirrorBucket(BaseModel):
    bucket: int
    rows: int
    # sha256 (hex) of the bucket's `<queue_customer_id>:<version>\n` lines, sorted by id
    digest: str


class MirrorDigest(BaseModel):
    """Per bucket of customers, the row count and digest (docs/mirror.md, drift check)."""

    algorithm: Literal["sha256-id-version-v1"] = "sha256-id-version-v1"
    buckets: int
    rows: int
    digests: list[MirrorBucket]
