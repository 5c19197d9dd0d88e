"""The key formats of Standard Webhooks: `whsec_` secrets and `whsk_` ed25519 keys."""

from __future__ import annotations

import base64
import binascii


def decode_base64_key(value: str, prefix: str, sizes: range | tuple[int, ...]) -> bytes:
    """The bytes of `<prefix><base64>`; ValueError (naming no value) when malformed."""
    if not value.startswith(prefix):
        raise ValueError(f"must start with {prefix}")
    encoded = value[len(prefix) :]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"must be {prefix} followed by base64") from None
    if len(raw) not in sizes:
        raise ValueError(f"must hold {min(sizes)} to {max(sizes)} bytes after {prefix}")
    return raw


# Standard Webhooks: symmetric secrets of 24 to 64 bytes; an ed25519 private key as its
# 32-byte seed, or the 64 bytes (seed + public key) libsodium keeps.
MIRROR_SECRET_PREFIX, MIRROR_SECRET_SIZES = "whsec_", range(24, 65)
MIRROR_KEY_PREFIX, MIRROR_KEY_SIZES = "whsk_", (32, 64)
