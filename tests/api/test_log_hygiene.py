"""Tokens, keys and customers' PII never reach the logs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import structlog

from raxx_queue.logs import configure_logging
from raxx_queue.redaction import Redactor
from raxx_queue.settings import LogFormat, Settings
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
        # Console reads the e-mail (Raptor's record has none): it passed through the app
        assert response.json().get("billing_email") == (
            EMAIL if headers is values.CONSOLE else None
        )
        await client.get("/api/v1/billing/customers", headers=headers)
    await client.get("/api/v1/billing/customers", headers={"Authorization": "Bearer wrong-token"})
    await client.get("/metrics", headers={"Authorization": f"Bearer {values.CONSOLE_TOKEN}x"})

    assert captured_logs.logged(caller="console")
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


def test_every_line_is_one_json_object_whatever_it_holds(captured_logs: CapturedLogs) -> None:
    configure_logging(Settings(log_format=LogFormat.JSON, log_level="DEBUG"))
    log = structlog.get_logger("tests.lines")
    log.info("odd_values", huge=2**70, when=datetime(2026, 11, 23, tzinfo=UTC), kind=object)
    logging.getLogger("tests.lines").warning("stdlib %s", "line")
    (odd,) = [e for e in captured_logs.entries if e["event"] == "odd_values"]
    assert odd["huge"] == 2**70  # past what orjson holds: the fallback encoder
    assert odd["kind"] == "<class 'object'>"
    assert captured_logs.logged(event="stdlib line", level="warning")
