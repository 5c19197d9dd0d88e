"""What one request line costs the worker: structlog, the redactor, stdlib logging.

    .venv/bin/python -m bench.log_line

Every request is logged at INFO (`api/middleware.py`, the line `request`, written by
`logs.log_info`), so this is paid per request in production (and in `bench.run`, whose
service logs at INFO). Logging is set up by `configure_logging`, as the service does,
with the handler's stream swapped for an in-memory one: what is timed is Python's work,
not the write(2). Prints µs per line (best of five passes), µs to redact the line's
fields alone, and µs for the same line through structlog's bound logger (the way every
other line goes).
"""

from __future__ import annotations

import io
import logging
import timeit

import structlog
from tests.support import values

from raxx_queue.logs import configure_logging, log_info
from raxx_queue.redaction import redactor
from raxx_queue.settings import LogFormat, Settings

# the fields of a webhook's request line (api/middleware.py and webhook_lane.py)
FIELDS = {
    "method": "POST",
    "route": "/api/v1/billing/webhook",
    "status": 200,
    "duration_ms": 3.61,
    "caller": None,
    "event_id": "evt_1NG8Du2eZvKYlo2CUI79vXWy",
    "type": "customer.subscription.updated",
    "outcome": "applied",
    "queue_customer_id": "cust_bench_0001",
    "request_id": "b685c8c50e2d6ae6ebbbe2a6cbec564c",
}
LINES = 20_000


def best_micros(work: object, number: int) -> float:
    assert callable(work)
    return min(timeit.repeat(work, number=number, repeat=5)) / number * 1e6


def main() -> None:
    settings = Settings(
        log_format=LogFormat.JSON,
        log_level="INFO",
        # the redactor scans every line for the configured secrets: the tests' made-up ones
        database_url="postgresql://bench:not-a-secret@127.0.0.1:5432/bench",
        stripe_webhook_secret=values.WEBHOOK_SECRET,
        billing_audit_hmac_key=values.AUDIT_KEY,
    )
    configure_logging(settings)
    stream = io.StringIO()
    for handler in logging.getLogger().handlers:
        if handler.get_name() == "raxx_queue" and isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)
    request_log = logging.getLogger("raxx_queue.http")
    log = structlog.get_logger("raxx_queue.http")

    def line() -> None:
        log_info(request_log, "request", **FIELDS)

    def structlog_line() -> None:
        log.info("request", **FIELDS)

    def fields() -> None:
        redactor.value(dict(FIELDS))

    per_line = best_micros(line, LINES)
    per_redaction = best_micros(fields, LINES)
    last = stream.getvalue().splitlines()[-1]
    per_structlog_line = best_micros(structlog_line, LINES)
    print(f"request line: {per_line:.1f} µs (of which redacting its fields {per_redaction:.1f} µs)")
    print(f"the same line through structlog's bound logger: {per_structlog_line:.1f} µs")
    print(f"  {len(last)} bytes: {last}")


if __name__ == "__main__":
    main()
