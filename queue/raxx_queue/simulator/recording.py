"""What the Stripe double records of each request, and the failures a test can script."""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Literal

import httpx

from raxx_queue.simulator.fixtures import Json
from raxx_queue.simulator.form import decode_form
from raxx_queue.simulator.state import StripeApiError

FailureKind = Literal[
    "card_declined",  # 402 card_error; the endpoint ran, so the answer is kept for its key
    "server_error",  # 500 api_error, before the endpoint ran
    "rate_limit",  # 429, before the endpoint ran
    "auth",  # 401, before the endpoint ran
    "timeout",  # httpx.ReadTimeout, nothing happened at Stripe
    "connect_timeout",  # httpx.ConnectTimeout, nothing happened at Stripe
    "lost_response",  # the endpoint ran (and kept its answer), then httpx.ReadTimeout
]


@dataclass
class ScriptedFailure:
    """One scripted failure for requests whose path starts with `path_prefix`."""

    kind: FailureKind
    path_prefix: str
    method: str | None = None
    remaining: int | None = 1  # None: until cleared
    decline_code: str = "insufficient_funds"
    retry_after: int | None = None  # a `Retry-After` header on the answer (rate_limit)
    after: int = 0  # matching requests let through before the failures start

    def matches(self, method: str, path: str) -> bool:
        """Whether a request is hit by this failure."""
        return path.startswith(self.path_prefix) and self.method in (None, method)


@dataclass(eq=False)
class RecordedRequest:
    """A request as it reached the double. The API key itself is never kept."""

    method: str
    path: str
    query: Json
    form: Json
    idempotency_key: str | None
    stripe_version: str | None
    has_authorization: bool
    api_key_accepted: bool  # the bearer key is the one the double was built with (or any)
    headers: dict[str, str] = field(repr=False)  # without Authorization
    body: str = field(repr=False)
    status: int | None = None  # None when the transport raised
    replayed: bool = False
    failure: FailureKind | None = None

    @property
    def params(self) -> Json:
        """The form body of a POST, the query otherwise."""
        return self.form if self.method == "POST" else self.query


@dataclass(frozen=True)
class KeptAnswer:
    method: str
    path: str
    form: Json
    status: int
    payload: Json


def record_of(request: httpx.Request, api_key: str | None) -> RecordedRequest:
    body = request.content.decode()
    headers = {name: value for name, value in request.headers.items() if name != "authorization"}
    authorization = request.headers.get("authorization", "")
    return RecordedRequest(
        method=request.method,
        path=request.url.path,
        query=decode_form(request.url.query.decode()),
        form=decode_form(body) if request.method == "POST" else {},
        idempotency_key=request.headers.get("idempotency-key"),
        stripe_version=request.headers.get("stripe-version"),
        has_authorization=authorization.startswith("Bearer "),
        api_key_accepted=api_key is None
        or hmac.compare_digest(authorization.encode(), f"Bearer {api_key}".encode()),
        headers=headers,
        body=body,
    )


def failure_answer(failure: ScriptedFailure, request: httpx.Request) -> tuple[int, Json]:
    if failure.kind == "timeout":
        raise httpx.ReadTimeout("scripted: read timed out", request=request)
    if failure.kind == "connect_timeout":
        raise httpx.ConnectTimeout("scripted: connect timed out", request=request)
    error = {
        "server_error": StripeApiError(500, "api_error", "An unknown error occurred (scripted)."),
        "rate_limit": StripeApiError(
            429,
            "invalid_request_error",
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits.",
            code="rate_limit",
        ),
        "auth": StripeApiError(
            401, "invalid_request_error", "Invalid API Key provided: sk_test_****"
        ),
    }[failure.kind]
    return error.status, error.body


def idempotency_mismatch(key: str | None) -> StripeApiError:
    """Stripe's answer to a key used again with other parameters."""
    return StripeApiError(
        400,
        "idempotency_error",
        "Keys for idempotent requests can only be used with the same parameters they "
        f"were first used with. Try using a key other than '{key}' "
        "if you meant to execute a different request.",
    )
