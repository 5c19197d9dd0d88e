"""What a write flow needs: the lifespan's resources and who asked."""

from __future__ import annotations

from dataclasses import dataclass

from raxx_queue.db.pool import Database
from raxx_queue.settings import Settings
from raxx_queue.stripe_errors import StripeNotConfigured
from raxx_queue.stripe_gateway import StripeGateway
from raxx_queue.wakeups import Wakeup


@dataclass(frozen=True)
class BillingContext:
    db: Database
    settings: Settings
    stripe: StripeGateway | None
    mirror_wakeup: Wakeup
    audit_wakeup: Wakeup
    actor: str  # the audit log's actor: the calling service
    request_id: str | None

    def gateway(self) -> StripeGateway:
        """The Stripe gateway, or 503 STRIPE_NOT_CONFIGURED."""
        if self.stripe is None:
            raise StripeNotConfigured()
        return self.stripe
