"""Idempotency keys of Stripe writes, derived from the business operation (SPEC §3).

The same operation always sends the same key, so a retried or duplicated request gets
Stripe's first answer back instead of a second customer, subscription or session.
"""

from __future__ import annotations

import hashlib

# Portal sessions are short-lived: a replayed (possibly expired) URL is only returned to
# requests within the same minute.
PORTAL_WINDOW_SECONDS = 60


def _digest(*parts: str | None) -> str:
    joined = "\x1f".join(part or "" for part in parts)
    return hashlib.sha256(joined.encode()).hexdigest()[:16]


def customer_key(queue_customer_id: str, *, replaces: str | None = None) -> str:
    """One Stripe customer per queue customer (a new one only after a deleted one)."""
    if replaces is not None:
        return f"customer:{queue_customer_id}:replaces:{replaces}"
    return f"customer:{queue_customer_id}"


def attach_key(customer_id: str, payment_method_id: str) -> str:
    return f"attach:{customer_id}:{payment_method_id}"


def default_payment_method_key(customer_id: str, payment_method_id: str) -> str:
    return f"default-payment-method:{customer_id}:{payment_method_id}"


def subscribe_key(queue_customer_id: str, plan_tier: str, payment_method_id: str) -> str:
    return f"subscribe:{queue_customer_id}:{plan_tier}:{payment_method_id}"


def checkout_key(
    queue_customer_id: str, plan_tier: str, *, customer: str, success_url: str, cancel_url: str
) -> str:
    """Same customer (id or email), tier and redirects → the same open Checkout Session."""
    return f"checkout:{queue_customer_id}:{plan_tier}:{_digest(customer, success_url, cancel_url)}"


def portal_key(customer_id: str, return_url: str | None, *, now: float) -> str:
    window = int(now) // PORTAL_WINDOW_SECONDS
    return f"portal:{customer_id}:{_digest(return_url)}:{window}"
