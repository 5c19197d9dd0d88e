"""Fixed test configuration values (none of them real secrets)."""

RAPTOR_TOKEN = "raptor-test-token-7f3a9c1e5b"
CONSOLE_TOKEN = "console-test-token-2d8e6b4a0c"
METRICS_TOKEN = "metrics-test-token-9e1b3d5f7a"
WEBHOOK_SECRET = "whsec_test_current_4f1c2a9e7d3b5a8c"
OLD_WEBHOOK_SECRET = "whsec_test_previous_9b7d5f3e1a2c4b6d"
THIN_WEBHOOK_SECRET = "whsec_test_thin_6e2a8c4f0b1d3e5a"
OLD_THIN_WEBHOOK_SECRET = "whsec_test_thin_previous_3c5e7a9b1d"
AUDIT_KEY = "audit-hmac-test-key-5c3e1a7b9d"
MIRROR_TOKEN = "mirror-test-token-8a6c4e2b0d"
# Standard Webhooks secrets of the mirror pushes (the second for rotations), and a key
MIRROR_SIGNING_SECRET = "whsec_bWlycm9yLXNpZ25pbmctb2xkLXRlc3Qtc2VjcmV0LTE="
NEW_MIRROR_SIGNING_SECRET = "whsec_bWlycm9yLXNpZ25pbmctbmV3LXRlc3Qtc2VjcmV0LTI="
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
