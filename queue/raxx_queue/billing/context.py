"""What a write flow needs: the lifespan's resources and who asked."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from raxx_queue.audit.log import record_once
from raxx_queue.db.pool import Database, Transaction
from raxx_queue.settings import Settings
from raxx_queue.stripe_errors import StripeNotConfigured
from raxx_queue.stripe_gateway import StripeGateway
from raxx_queue.vocabulary import Actor


@dataclass(frozen=True)
class BillingContext:
    db: Database
    settings: Settings
    stripe: StripeGateway | None
    actor: Actor  # the audit log's actor: the calling service
    request_id: str | None

    def gateway(self) -> StripeGateway:
        """The Stripe gateway, or 503 STRIPE_NOT_CONFIGURED."""
        if self.stripe is None:
            raise StripeNotConfigured()
        return self.stripe

    async def record_once(
        self,
        tx: Transaction,
        *,
        action: str,
        queue_customer_id: str,
        stripe_object_id: str,
        summary: dict[str, Any],
    ) -> bool:
        """The audit row of this request's operation, once however often it is replayed."""
        return await record_once(
            tx,
            actor=self.actor,
            action=action,
            queue_customer_id=queue_customer_id,
            stripe_object_id=stripe_object_id,
            request_id=self.request_id,
            summary=summary,
        )
