"""Tokens, keys and customers' PII never reach the logs."""

from __future__ import annotations

import httpx

from raxx_queue.redaction import Redactor
from tests.support import seed, values
from tests.support.database import Conn
from tests.support.logs import CapturedLogs

EMAIL = "jenny.rosen@example.com"
NAME = "Jenny Rosen"


async def test_reads_and_auth_failures_log_no_secret_or_pii(
    client: httpx.AsyncClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    await seed.customer(db, "cust_pii", stripe_customer_id="cus_pii", email=EMAIL, name=NAME)
    for headers in (values.RAPTOR, values.CONSOLE):
        response = await client.get("/api/v1/billing/customers/cust_pii", headers=headers)
        assert response.json()["billing_email"] == EMAIL
        await client.get("/api/v1/billing/customers", headers=headers)
    await client.get("/api/v1/billing/customers", headers={"Authorization": "Bearer wrong-token"})
    await client.get("/metrics", headers={"Authorization": f"Bearer {values.CONSOLE_TOKEN}x"})

    assert any('"caller": "console"' in line for line in captured_logs.lines)
    captured_logs.assert_free_of([*values.SECRETS, EMAIL, NAME])


def test_redactor_masks_known_shapes() -> None:
    redactor = Redactor()
    redactor.register(["my-configured-token-123"])
    text = redactor.text(
        "token my-configured-token-123 key sk_live_abc123 whsec_xyz "
        "mail a.b@example.org url postgres://u:p@h/db Bearer abc.def"
    )
    for leaked in (
        "my-configured-token-123",
        "sk_live_abc123",
        "whsec_xyz",
        "a.b@example.org",
        "postgres://u:p@h/db",
        "abc.def",
    ):
        assert leaked not in text
    assert redactor.value({"billing_email": "x", "nested": {"Authorization": "y"}}) == {
        "billing_email": "[redacted]",
        "nested": {"Authorization": "[redacted]"},
    }


def test_redactor_masks_url_encoded_email() -> None:
    """httpx logs request URLs at INFO: a Stripe query by e-mail carries it encoded."""
    line = 'HTTP Request: GET https://api.stripe.com/v1/customers?email=qc_1%40example.com "200"'
    assert "example.com" not in Redactor().text(line)
