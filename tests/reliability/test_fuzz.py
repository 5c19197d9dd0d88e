"""Schemathesis against the service's own OpenAPI schema, in process, as every caller.

Each operation is fuzzed three times: with no token, as Raptor and as Console.
Whatever is sent, the answer is never a 5xx, it matches the documented status codes,
content types and schemas, and every error has the one shape of SPEC §3.

`QUEUE_FUZZ_EXAMPLES` (default 25) and `QUEUE_FUZZ_SEED` (default fixed, so the
suite is reproducible) widen the search for a longer exploratory run.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from schemathesis.python import asgi

from raxx_queue.app import create_app
from raxx_queue.simulator.double import StripeDouble
from tests.conftest import make_settings, running_app
from tests.support import values
from tests.support.database import truncate_all
from tests.support.webhooks import WEBHOOK

EXAMPLES = int(os.environ.get("QUEUE_FUZZ_EXAMPLES", "25"))
SEED = int(os.environ.get("QUEUE_FUZZ_SEED", "20240611"))
BASE_URL = f"http://{asgi.HOST}"
ERROR_CODE = re.compile(r"^[A-Z][A-Z0-9_]*$")

# The schema is the app's own; no database is needed to render it.
schema = schemathesis.openapi.from_dict(create_app(make_settings(None)).openapi())
schema.config.seed = SEED
schema.config.generation.update(
    modes=["positive", "negative"], max_examples=EXAMPLES, allow_x00=True
)
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)


class ErrorShapeViolation(AssertionError):
    pass


def error_shape(_ctx: Any, response: schemathesis.Response, case: schemathesis.Case) -> None:
    """Every response has X-Request-ID; every error is {"error":{code,message},"request_id"}."""
    request_ids = response.headers.get("x-request-id") or []
    if not request_ids or not request_ids[0]:
        raise ErrorShapeViolation(f"{case.operation.label}: no X-Request-ID")
    if response.status_code < 400:
        return
    body = response.json()
    if not isinstance(body, dict) or set(body) != {"error", "request_id"}:
        raise ErrorShapeViolation(f"{response.status_code}: not the error shape: {body!r}")
    error = body["error"]
    if not isinstance(error, dict) or set(error) != {"code", "message"}:
        raise ErrorShapeViolation(f"{response.status_code}: error is not {{code, message}}")
    if not isinstance(error["code"], str) or not ERROR_CODE.match(error["code"]):
        raise ErrorShapeViolation(f"{response.status_code}: code {error['code']!r}")
    if not isinstance(error["message"], str) or body["request_id"] != request_ids[0]:
        raise ErrorShapeViolation(f"{response.status_code}: message or request_id mismatch")


CHECKS: list[Callable[..., Any]] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    unsupported_method,
    error_shape,
]


@pytest.fixture(scope="module")
def service(database_url: str) -> Iterator[asgi.ASGIClient]:
    """The app over the session database and the Stripe double, its lifespan running."""
    app = create_app(
        make_settings(database_url, log_level="WARNING"),
        stripe_transport=StripeDouble(api_key=values.STRIPE_KEY).transport,
    )
    with asgi.get_client(app) as client:
        yield client
    # the lifespan runs in schemathesis' event-loop thread: stop the app's workers there
    asgi.shutdown_lifespans()


@pytest.fixture(scope="module", autouse=True)
async def empty_tables(database_url: str) -> None:
    await truncate_all(database_url)


def exercise(case: schemathesis.Case, service: asgi.ASGIClient, token: str | None) -> None:
    headers = values.bearer(token) if token else {}
    case.call_and_validate(base_url=BASE_URL, session=service, headers=headers, checks=CHECKS)


@schema.parametrize()
@FUZZ_SETTINGS
def test_anonymous(case: schemathesis.Case, service: asgi.ASGIClient) -> None:
    exercise(case, service, None)


@schema.parametrize()
@FUZZ_SETTINGS
def test_as_raptor(case: schemathesis.Case, service: asgi.ASGIClient) -> None:
    exercise(case, service, values.RAPTOR_TOKEN)


@schema.parametrize()
@FUZZ_SETTINGS
def test_as_console(case: schemathesis.Case, service: asgi.ASGIClient) -> None:
    exercise(case, service, values.CONSOLE_TOKEN)


# Stripe-Signature headers over HTTP: structured ones (fresh, stale, huge and repeated
# timestamps, signatures of every length and alphabet) and arbitrary Latin-1 text.
HEADER_EXAMPLES = int(os.environ.get("QUEUE_HEADER_FUZZ_EXAMPLES", "300"))
_HEADER_ITEMS = st.one_of(
    st.sampled_from(["t={now}", "t={old}", "t=", "v1=", "v0=" + "a" * 64, " t={now}"]),
    st.builds("t={}".format, st.text("0123456789-+ .e", max_size=400)),
    st.builds("v1={}".format, st.text("0123456789abcdefABC\u00e9= ", max_size=80)),
    st.text(st.characters(min_codepoint=1, max_codepoint=0xFF), max_size=40),
)
SIGNATURE_HEADERS = st.one_of(
    st.lists(_HEADER_ITEMS, max_size=8).map(",".join),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=2000),
)


@pytest.fixture(scope="module")
def raw_http(database_url: str) -> Iterator[Callable[[bytes], httpx.Response]]:
    """POST to the webhook with a header sent byte for byte (requests refuses some).

    The app runs in a portal thread's event loop, so hypothesis drives it synchronously.
    """
    settings = make_settings(database_url, log_level="WARNING")
    with (
        start_blocking_portal() as portal,
        portal.wrap_async_context_manager(running_app(settings)) as client,
    ):

        def post(header: bytes) -> httpx.Response:
            body = b'{"id": "evt_fuzz", "type": "customer.created"}'
            headers = {"Stripe-Signature": header}
            return portal.call(lambda: client.post(WEBHOOK, content=body, headers=headers))

        yield post


@settings(max_examples=HEADER_EXAMPLES, deadline=None, database=None)
@given(header=SIGNATURE_HEADERS)
def test_signature_header_fuzz_never_5xx(
    raw_http: Callable[[bytes], httpx.Response], header: str
) -> None:
    now = int(time.time())
    header = header.replace("{now}", str(now)).replace("{old}", str(now - 7 * 86_400))
    response = raw_http(header.encode("latin-1"))
    assert response.status_code == 400, (response.status_code, header[:200])
    assert response.json()["error"]["code"] == "INVALID_SIGNATURE"
