"""No secret, database URL, e-mail address or customer name in any log line of the session.

The collector (tests/support/log_hygiene.py, started in conftest) holds every line the
suite made the service write: in-process records rendered by the production formatter
and the stderr of every `raxx-queue serve` process. This test runs last.
"""

from __future__ import annotations

import logging

import pytest

from tests.support import values
from tests.support.log_hygiene import SESSION_LOGS, leaks


def needles(*database_urls: str) -> dict[str, set[str]]:
    return {
        "secret": set(values.SECRETS),
        "customer name": set(values.CUSTOMER_NAMES),
        **{what: set(found) for what, found in SESSION_LOGS.watched.items()},
        "database URL": {*SESSION_LOGS.watched.get("database URL", ()), *database_urls},
    }


def test_the_check_finds_every_kind_of_leak() -> None:
    """The detector itself: each kind of value, raw or encoded, is found; clean lines pass."""
    url = "postgresql://postgres@127.0.0.1:5432/queue_test_0123456789ab"
    lines = [
        ("a", f'{{"token": "{values.RAPTOR_TOKEN}"}}'),
        ("b", "post_data=name=Jenny+Rosen"),
        ("c", "database at queue_test_0123456789ab via " + url),
        ("d", '{"email": "jenny%40example.com"}'),
        ("e", f"key={values.STRIPE_KEY}"),
        ("f", '{"event": "webhook_processed", "billing_email": "[redacted]"}'),
    ]
    found = {leak.source for leak in leaks(lines, needles(url))}
    assert found == {"a", "b", "c", "d", "e"}


@pytest.mark.session_end
def test_no_secret_or_pii_in_any_log_line(pg_server: str, database_url: str) -> None:
    # a canary through the real pipeline: the line is collected, its secret redacted
    logging.getLogger("tests.hygiene").warning(
        "log_hygiene_canary %s", f"Authorization: Bearer {values.CONSOLE_TOKEN}"
    )
    lines = list(SESSION_LOGS.lines())
    assert any("log_hygiene_canary" in line for _, line in lines)
    found = [str(leak) for leak in leaks(lines, needles(pg_server, database_url))]
    sources = sorted({source for source, _ in lines})
    assert not found, f"{len(found)} leak(s) in {len(lines)} lines: " + "; ".join(found[:20])
    print(f"log hygiene: {len(lines)} lines from {len(sources)} sources, no leak")
