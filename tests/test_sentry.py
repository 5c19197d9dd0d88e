"""What reaches Sentry: no request body, no local variables, no query string, no PII.

Sentry runs with a transport that keeps every envelope in memory, and the app is
driven as Stripe would drive it: a delivery whose processing fails after its body
was read (the body, with a customer's e-mail, sat in the frames' local variables),
and deliveries whose Stripe-Signature header used to crash its parsing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest
import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from raxx_queue.sentry import init_sentry
from raxx_queue.simulator.events import event_body, sign
from tests.conftest import AppFactory, make_settings
from tests.support import values
from tests.support.database import Conn
from tests.support.webhooks import WEBHOOK, customer_event

EMAIL = "jenny.rosen@example.com"


class KeptEnvelopes(Transport):
    """Sentry's transport, replaced: envelopes are kept, nothing is sent."""

    envelopes: ClassVar[list[Envelope]] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        type(self).envelopes.append(envelope)


def _events() -> list[dict[str, Any]]:
    return [
        event for envelope in KeptEnvelopes.envelopes if (event := envelope.get_event()) is not None
    ]


def _sent_text() -> str:
    return "\n".join(e.serialize().decode("utf-8", "replace") for e in KeptEnvelopes.envelopes)


@pytest.fixture
def sentry_events(clean_db: str) -> Iterator[None]:
    KeptEnvelopes.envelopes.clear()
    init_sentry(
        make_settings(clean_db, sentry_dsn="https://public@sentry.invalid/1"),
        transport=KeptEnvelopes,
    )
    yield
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: a client that sends nothing, for the rest of the session


async def _post(client: httpx.AsyncClient, body: bytes, header: str, query: str = "") -> int:
    response = await client.post(
        f"{WEBHOOK}{query}",
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )
    return response.status_code


async def test_a_failure_after_the_body_was_read_sends_no_body_or_variables(
    sentry_events: None, app_factory: AppFactory, db: Conn
) -> None:
    await db.execute(
        """
        CREATE FUNCTION fail_on_audit() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'injected failure'; END $$;
        CREATE TRIGGER fail_on_audit BEFORE INSERT ON billing_action_log
            FOR EACH ROW EXECUTE FUNCTION fail_on_audit();
        """
    )
    body = event_body(customer_event("customer.created", email=EMAIL))
    try:
        async with app_factory() as client:
            status = await _post(
                client, body, sign(body, values.WEBHOOK_SECRET), query="?token=query-secret-1234"
            )
    finally:
        await db.execute(
            "DROP TRIGGER fail_on_audit ON billing_action_log; DROP FUNCTION fail_on_audit()"
        )
    sentry_sdk.flush()
    assert status == 500
    failures = [e for e in _events() if e.get("exception")]
    assert failures, "the unexpected failure reached Sentry"
    for event in failures:
        request = event.get("request", {})
        assert not {"data", "headers", "cookies", "query_string"} & set(request)
        assert "?" not in request.get("url", "")
        for value in event["exception"]["values"]:
            for frame in value.get("stacktrace", {}).get("frames", []):
                assert "vars" not in frame
    text = _sent_text()
    for leaked in (EMAIL, "Jenny Rosen", "query-secret-1234", values.WEBHOOK_SECRET):
        assert leaked not in text


@pytest.mark.parametrize(
    "header",
    [
        "t=" + "9" * 400 + ",v1=" + "0" * 64,  # a timestamp no float can hold
        "t=1,v1=" + "\u00e9" * 64,  # a non-ASCII signature
    ],
    ids=["huge timestamp", "non-ASCII v1"],
)
async def test_crashing_headers_are_a_400_security_event_without_the_body(
    sentry_events: None, app_factory: AppFactory, db: Conn, header: str
) -> None:
    # an address in a body the old e-mail pattern needed seconds per 16 KiB to scan
    body = ("a" * 200_000 + "@" + EMAIL).encode()
    async with app_factory() as client:
        response = await client.post(
            WEBHOOK, content=body, headers={"Stripe-Signature": header.encode("latin-1")}
        )
    sentry_sdk.flush()
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_SIGNATURE"
    events = _events()
    assert [e["tags"]["reason"] for e in events] == ["malformed_header"]
    assert not any(e.get("exception") for e in events)
    assert EMAIL not in _sent_text()
