"""Stripe-Signature: parsed once and strictly, then verified by the SDK against every secret.

The header is `t=<unix time>,v1=<hex>[,v1=<hex>…]` (other schemes, such as `v0`, are
ignored). Anything else is malformed: a key that is not a bare lower-case word (so
` t=` cannot hide a second timestamp), no timestamp or more than one, a timestamp
that is not 1-12 digits, a `v1` that is not 64 hex digits. The SDK then verifies a
header rebuilt from what was parsed, so the timestamp whose age was checked is the
one the signature covers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import stripe

from raxx_queue.webhooks.errors import InvalidSignature

# Stripe sends one v1 per active secret: a handful at most.
MAX_HEADER_CHARS = 2048
_KEY = re.compile(r"[a-z][a-z0-9]{0,15}")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_V1 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SignatureHeader:
    timestamp: int
    signatures: tuple[str, ...]

    def canonical(self) -> str:
        """The header as the SDK should read it: exactly what was parsed, nothing else."""
        return ",".join((f"t={self.timestamp}", *(f"v1={s}" for s in self.signatures)))


def parse_signature_header(header: str) -> SignatureHeader:
    """The one timestamp and the v1 signatures of a header, or InvalidSignature."""
    if len(header) > MAX_HEADER_CHARS:
        raise InvalidSignature("malformed_header")
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        key, separator, value = item.partition("=")
        if not separator or not _KEY.fullmatch(key):
            raise InvalidSignature("malformed_header")
        if key == "t":
            timestamps.append(value)
        elif key == "v1":
            if not _V1.fullmatch(value):
                raise InvalidSignature("malformed_header")
            signatures.append(value)
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]):
        raise InvalidSignature("malformed_header")
    if not signatures:
        raise InvalidSignature("no_v1_signature")
    return SignatureHeader(int(timestamps[0]), tuple(signatures))


def verify_signature(
    payload: bytes, header: str | None, secrets: Sequence[str], tolerance: int, now: float
) -> int:
    """Return the index of the secret that signed payload, or raise InvalidSignature."""
    if not header:
        raise InvalidSignature("missing_header")
    parsed = parse_signature_header(header)
    if now - parsed.timestamp > tolerance:
        raise InvalidSignature("too_old")
    if parsed.timestamp - now > tolerance:
        raise InvalidSignature("in_future")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidSignature("not_utf8") from None
    canonical = parsed.canonical()
    for index, secret in enumerate(secrets):
        try:
            # the age is checked above, in both directions
            stripe.WebhookSignature.verify_header(text, canonical, secret, tolerance=None)
        except stripe.SignatureVerificationError:
            continue
        return index
    raise InvalidSignature("no_match")
