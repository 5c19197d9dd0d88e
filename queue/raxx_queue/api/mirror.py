"""Mirror-sync for Raptor (just-in-time row) and Console (re-push)."""

from __future__ import annotations

from fastapi import APIRouter

from raxx_queue.api.deps import MirrorSyncer, ServicesDep
from raxx_queue.errors import error_responses
from raxx_queue.mirror.requeue import requeue_every_mirror
from raxx_queue.mirror.schemas import MirrorRow, MirrorSyncQueued, MirrorSyncRequest
from raxx_queue.mirror.sync import sync_customer_mirror

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
    batches, one such run at a time (409 `MIRROR_SYNC_RUNNING` while one runs)."""
    if body.queue_customer_id is None:
        queued = await requeue_every_mirror(services.db)
        return MirrorSyncQueued(queued=queued)
    row = await sync_customer_mirror(services.db, body.queue_customer_id)
    return MirrorRow.model_validate(row)
