"""Test configuration values (none of them real secrets). The webhook and mirror signing
secrets are drawn afresh in each process, so that none is committed: every service a test
or benchmark starts gets them from that process (its environment or its load spec)."""

import base64
import secrets


def _webhook_secret() -> str:
    """A Stripe endpoint secret's shape: `whsec_` and 32 characters."""
    return "whsec_" + secrets.token_hex(16)


def _signing_secret(key: bytes) -> str:
    """A Standard Webhooks secret: `whsec_` and the base64 of its key."""
    return "whsec_" + base64.b64encode(key).decode()


RAPTOR_TOKEN = "raptor-test-token-7f3a9c1e5b"
CONSOLE_TOKEN = "console-test-token-2d8e6b4a0c"
METRICS_TOKEN = "metrics-test-token-9e1b3d5f7a"
WEBHOOK_SECRET = _webhook_secret()
OLD_WEBHOOK_SECRET = _webhook_secret()
THIN_WEBHOOK_SECRET = _webhook_secret()
OLD_THIN_WEBHOOK_SECRET = _webhook_secret()
AUDIT_KEY = "audit-hmac-test-key-5c3e1a7b9d"
MIRROR_TOKEN = "mirror-test-token-8a6c4e2b0d"
# Standard Webhooks secrets of the mirror pushes (the second for rotations), and a key
MIRROR_SIGNING_BYTES = secrets.token_bytes(32)
NEW_MIRROR_SIGNING_BYTES = secrets.token_bytes(32)
MIRROR_SIGNING_SECRET = _signing_secret(MIRROR_SIGNING_BYTES)
NEW_MIRROR_SIGNING_SECRET = _signing_secret(NEW_MIRROR_SIGNING_BYTES)
MIRROR_SIGNING_KEY = "whsk_bWlycm9yLWVkMjU1MTktdGVzdC1zZWVkLTMyYnl0ZXM="
STRIPE_KEY = "rk_test_queuetests0123456789abcdef"
PRICE_PRO = "price_pro_monthly_test"
PRICE_PRO_PLUS = "price_pro_plus_monthly_test"

SECRETS = (
    RAPTOR_TOKEN,
    CONSOLE_TOKEN,
    METRICS_TOKEN,
    WEBHOOK_SECRET,
    OLD_WEBHOOK_SECRET,
    THIN_WEBHOOK_SECRET,
    OLD_THIN_WEBHOOK_SECRET,
    AUDIT_KEY,
    MIRROR_TOKEN,
    MIRROR_SIGNING_SECRET,
    NEW_MIRROR_SIGNING_SECRET,
    MIRROR_SIGNING_KEY,
    STRIPE_KEY,
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


RAPTOR = bearer(RAPTOR_TOKEN)
CONSOLE = bearer(CONSOLE_TOKEN)
METRICS = bearer(METRICS_TOKEN)

# Distinctive customer names the tests send (short ones like "Ann" would match code);
# the log-hygiene check looks for each of them. E-mail addresses are found by shape.
CUSTOMER_NAMES = ("Jenny Rosen", "Marguerite Okonkwo-Lindqvist")
