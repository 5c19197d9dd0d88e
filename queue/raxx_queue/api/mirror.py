"""Mirror-sync for Raptor (just-in-time row) and Console (re-push); the drift check."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from raxx_queue.api.deps import MirrorDigestReader, MirrorSyncer, ServicesDep
from raxx_queue.errors import error_responses
from raxx_queue.mirror.digest import MAX_BUCKETS
from raxx_queue.mirror.requeue import requeue_every_mirror
from raxx_queue.mirror.schemas import (
    BucketCount,
    MirrorBucket,
    MirrorDigest,
    MirrorRow,
    MirrorSyncQueued,
    MirrorSyncRequest,
)
from raxx_queue.mirror.sync import mirror_digest, requeue_bucket_mirrors, sync_customer_mirror

router = APIRouter(
    prefix="/api/internal/billing",
    tags=["mirror"],
    responses=error_responses(400, 401, 404, 409, 413),
)


@router.post("/mirror-sync")
async def mirror_sync(
    body: MirrorSyncRequest, _caller: MirrorSyncer, services: ServicesDep
) -> MirrorRow | MirrorSyncQueued:
    """One customer: its current row, push queued. `all`: every row re-queued, in short
    batches, one such run at a time (409 `MIRROR_SYNC_RUNNING` while one runs). `bucket`
    of `buckets`: that bucket's rows re-queued."""
    if body.bucket is not None and body.buckets is not None:
        queued = await requeue_bucket_mirrors(services.db, body.bucket, body.buckets)
        return MirrorSyncQueued(queued=queued)
    if body.queue_customer_id is None:
        queued = await requeue_every_mirror(services.db)
        return MirrorSyncQueued(queued=queued)
    row = await sync_customer_mirror(services.db, body.queue_customer_id)
    return MirrorRow.model_validate(row)


@router.get("/mirror/digest", responses=error_responses(422))
async def mirror_digest_of_buckets(
    _caller: MirrorDigestReader,
    services: ServicesDep,
    buckets: Annotated[
        BucketCount, Query(description=f"a power of two from 1 to {MAX_BUCKETS}")
    ] = 256,
) -> MirrorDigest:
    """Per bucket of customers, the row count and a digest of its (id, version) pairs,
    for Raptor to compare with its copy (docs/mirror.md, the drift check)."""
    digests = await mirror_digest(services.db, buckets)
    return MirrorDigest(
        buckets=buckets,
        rows=sum(d.rows for d in digests),
        digests=[MirrorBucket(bucket=d.bucket, rows=d.rows, digest=d.digest) for d in digests],
    )
