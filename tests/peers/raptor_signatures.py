"""Raptor's check of a push's Standard Webhooks signature, with the reference library.

The `v1` (HMAC) signatures are verified by `standardwebhooks.Webhook`, the Standard
Webhooks project's own Python package, never by Queue's code; the library has no
`v1a` (ed25519), which is checked with `cryptography` against the public key.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


class SignatureCheck:
    """The secrets (by label) and public key Raptor accepts now; changeable mid-rotation."""

    def __init__(self, secrets: Mapping[str, str], public_key: bytes | None = None) -> None:
        self._lock = threading.Lock()
        self._secrets = dict(secrets)
        self._public_key = public_key

    def accept(self, secrets: Mapping[str, str], public_key: bytes | None = None) -> None:
        """From now on accept only these (Raptor's side of a rotation)."""
        with self._lock:
            self._secrets = dict(secrets)
            self._public_key = public_key

    def verify(self, headers: dict[str, str], raw: bytes) -> str | None:
        """The label of the accepted secret that verified the push (`v1a` for the key);
        None if nothing did."""
        with self._lock:
            secrets, public_key = dict(self._secrets), self._public_key
        for label, secret in secrets.items():
            try:
                Webhook(secret).verify(raw, headers, json_parse=False)
            except WebhookVerificationError:
                continue
            return label
        if public_key is not None and _ed25519_verifies(public_key, headers, raw):
            return "v1a"
        return None


def _ed25519_verifies(public_key: bytes, headers: dict[str, str], raw: bytes) -> bool:
    msg_id, stamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    signed = f"{msg_id}.{stamp}.".encode() + raw
    key = Ed25519PublicKey.from_public_bytes(public_key)
    for part in headers.get("webhook-signature", "").split(" "):
        version, _, signature = part.partition(",")
        if version != "v1a":
            continue
        try:
            key.verify(base64.b64decode(signature, validate=True), signed)
        except (InvalidSignature, binascii.Error, ValueError):
            continue
        return True
    return False
