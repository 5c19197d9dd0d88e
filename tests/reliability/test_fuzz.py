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
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
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
from tests.conftest import make_settings
from tests.peers.stripe_double import StripeDouble
from tests.support import values
from tests.support.database import truncate_all

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
