"""Plan tiers and their Stripe prices, from the environment only."""

from __future__ import annotations

from raxx_queue.billing.errors import PlanNotConfigured
from raxx_queue.settings import Settings


def price_for(settings: Settings, tier: str) -> str:
    """The configured price id of a paid tier, or 503 PLAN_NOT_CONFIGURED."""
    price_id = settings.price_for_tier(tier)
    if not price_id:
        raise PlanNotConfigured(tier)
    return price_id
