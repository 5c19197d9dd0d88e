"""Stripe-Signature verification against every configured secret, past and future skew."""

from __future__ import annotations

from collections.abc import Sequence

import stripe

from raxx_queue.errors import ServiceError


class InvalidSignature(ServiceError):
    """Any verification failure; the public message is the same for every reason."""

    status = 400
    code = "INVALID_SIGNATURE"

    def __init__(self, reason: str) -> None:
        super().__init__("webhook signature verification failed")
        self.reason = reason


def _timestamp(header: str) -> int:
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            if not value.isdigit():
                raise InvalidSignature("malformed_header")
            return int(value)
    raise InvalidSignature("malformed_header")


def verify_signature(
    payload: bytes, header: str | None, secrets: Sequence[str], tolerance: int, now: float
) -> int:
    """Return the index of the secret that signed payload, or raise InvalidSignature."""
    if not header:
        raise InvalidSignature("missing_header")
    timestamp = _timestamp(header)
    if now - timestamp > tolerance:
        raise InvalidSignature("too_old")
    if timestamp - now > tolerance:
        raise InvalidSignature("in_future")
    if not any(item.strip().startswith("v1=") for item in header.split(",")):
        raise InvalidSignature("no_v1_signature")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("not_utf8") from None
    for index, secret in enumerate(secrets):
        try:
            # tolerance is checked above, in both directions
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance=None)
        except stripe.SignatureVerificationError:
            continue
        return index
    raise InvalidSignature("no_match")
