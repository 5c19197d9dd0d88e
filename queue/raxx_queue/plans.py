"""Plan tiers and their Stripe prices: the map between them comes from configuration."""

from __future__ import annotations

from raxx_queue.errors import ServiceError
from raxx_queue.settings import Settings
from raxx_queue.vocabulary import PaidTier, PlanTier


class PlanNotConfigured(ServiceError):
    status = 503
    code = "PLAN_NOT_CONFIGURED"

    def __init__(self, tier: str) -> None:
        super().__init__(
            f"no Stripe price is configured for plan tier {tier} (STRIPE_PRICE_ID_{tier.upper()})"
        )


def price_tiers(settings: Settings) -> dict[str, PlanTier]:
    """Configured Stripe price id → the plan tier it sells; any other price is free."""
    tiers: dict[str, PlanTier] = {}
    if settings.stripe_price_id_pro:
        tiers[settings.stripe_price_id_pro] = "pro"
    if settings.stripe_price_id_pro_plus:
        tiers[settings.stripe_price_id_pro_plus] = "pro_plus"
    return tiers


def price_for(settings: Settings, tier: PaidTier) -> str:
    """The configured price id of a paid tier, or 503 PLAN_NOT_CONFIGURED."""
    price_id = {"pro": settings.stripe_price_id_pro, "pro_plus": settings.stripe_price_id_pro_plus}[
        tier
    ]
    if not price_id:
        raise PlanNotConfigured(tier)
    return price_id
