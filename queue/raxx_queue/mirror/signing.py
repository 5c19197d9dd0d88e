"""Standard Webhooks signatures of mirror pushes: `webhook-id`, `-timestamp`, `-signature`.

What is signed is `{webhook-id}.{webhook-timestamp}.{body}`: with every `whsec_` secret
(HMAC-SHA256, `v1,<base64>`), and with the ed25519 key when one is set (`v1a,<base64>`).
The id names a row version, so every retry of that version carries the same id; the
timestamp is the attempt's, so a retry is not refused as stale.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from raxx_queue.settings import Settings


def message_id(queue_customer_id: str, version: int) -> str:
    """The `webhook-id` of a row version: stable across retries and re-syncs."""
    return f"mirror_{queue_customer_id}_v{version}"


class MirrorSigner:
    """Signs push bodies with the configured secrets (and key); holds no text of them."""

    def __init__(self, secrets: Sequence[bytes], seed: bytes | None = None) -> None:
        if not secrets and seed is None:
            raise ValueError("a signer needs a secret or a key")
        self._secrets = tuple(secrets)
        self._key = Ed25519PrivateKey.from_private_bytes(seed) if seed is not None else None

    def headers(self, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """The three headers of one attempt to deliver `body`."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signed = b"".join((msg_id.encode(), b".", stamp.encode(), b".", body))
        signatures = [
            "v1," + _b64(hmac.digest(secret, signed, hashlib.sha256)) for secret in self._secrets
        ]
        if self._key is not None:
            signatures.append("v1a," + _b64(self._key.sign(signed)))
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": stamp,
            "webhook-signature": " ".join(signatures),
        }


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def signer_from_settings(settings: Settings) -> MirrorSigner | None:
    """The signer of RAPTOR_MIRROR_SIGNING_SECRET / _KEY; None when neither is set."""
    secrets = settings.mirror_signing_secrets()
    seed = settings.mirror_signing_seed()
    if not secrets and seed is None:
        return None
    return MirrorSigner(secrets, seed)
