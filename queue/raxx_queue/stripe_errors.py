"""Stripe failures as the service's errors, and the log lines operators need for them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import stripe
import structlog

from raxx_queue.errors import ServiceError

log = structlog.get_logger(__name__)

# every status a route that calls Stripe may answer because of Stripe (documentation)
STRIPE_ERROR_STATUSES = (400, 402, 404, 409, 422, 502, 503)


class StripeNotConfigured(ServiceError):
    status = 503
    code = "STRIPE_NOT_CONFIGURED"

    def __init__(self) -> None:
        super().__init__("no Stripe API key is configured (STRIPE_RESTRICTED_KEY)")


# The longest Retry-After Queue honours as given; a longer one is capped by the caller.
MAX_RETRY_AFTER = 3600.0


def retry_after_of(error: stripe.StripeError | None) -> float | None:
    """Seconds Stripe asked the caller to wait (`Retry-After`), if it said (the SDK does not
    read it)."""
    if error is None or not error.headers:
        return None
    value = next((v for k, v in error.headers.items() if k.lower() == "retry-after"), None)
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    if seconds is None or not 0 <= seconds <= MAX_RETRY_AFTER:
        return None
    return seconds


class StripeGatewayError(ServiceError):
    """A failed Stripe call; `stripe_code` / `stripe_request_id` are Stripe's, for operators,
    `http_status` and `retry_after` Stripe's answer (None when nothing came back)."""

    status = 502
    code = "STRIPE_ERROR"

    def __init__(
        self,
        message: str,
        *,
        operation: str,
        source: stripe.StripeError | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, code=code, status=status, headers=headers)
        self.operation = operation
        self.stripe_code = source.code if source is not None else None
        self.stripe_request_id = source.request_id if source is not None else None
        self.http_status: int | None = source.http_status if source is not None else None
        self.retry_after = retry_after_of(source)


class StripeCardError(StripeGatewayError):
    status = 402
    code = "CARD_DECLINED"


class StripeInvalidRequest(StripeGatewayError):
    """422 when Stripe rejected what the caller gave us, 400 when it rejected our request."""

    status = 422
    code = "INVALID_REQUEST"


class StripeObjectMissing(StripeInvalidRequest):
    status = 404
    code = "STRIPE_OBJECT_MISSING"


class StripeIdempotencyConflict(StripeGatewayError):
    status = 409
    code = "IDEMPOTENCY_CONFLICT"


class StripeMisconfigured(StripeGatewayError):
    code = "STRIPE_MISCONFIGURED"


class StripeUnavailable(StripeGatewayError):
    code = "STRIPE_UNAVAILABLE"


def _upper_snake(value: str | None) -> str | None:
    return value.upper().replace("-", "_") if value else None


def _param_head(param: str | None) -> str:
    return (param or "").split("[", 1)[0]


def map_stripe_error(
    error: stripe.StripeError,
    operation: str,
    *,
    input_params: frozenset[str] = frozenset(),
    blame_caller: bool = False,
) -> StripeGatewayError:
    """The service's answer to a Stripe failure; logs what operators need (never the key)."""
    details: dict[str, Any] = {
        "operation": operation,
        "error_type": type(error).__name__,
        "http_status": error.http_status,
        "stripe_code": error.code,
        "stripe_request_id": error.request_id,
    }
    if isinstance(error, stripe.CardError):
        decline = error.error.decline_code if error.error is not None else None
        log.info("stripe_card_error", decline_code=decline, **details)
        message = error.user_message or "the card was declined"
        if decline:
            message = f"{message} (decline_code: {decline})"
        code = _upper_snake(error.code) or "CARD_DECLINED"
        return StripeCardError(message, code=code, operation=operation, source=error)
    if isinstance(error, stripe.IdempotencyError):
        log.warning("stripe_idempotency_conflict", **details)
        return StripeIdempotencyConflict(
            "a different request for the same operation reached Stripe in the last 24 hours; "
            "retry with the same details",
            operation=operation,
            source=error,
        )
    if isinstance(error, stripe.InvalidRequestError):
        return _invalid_request(error, details, operation, input_params, blame_caller)
    if isinstance(error, stripe.AuthenticationError | stripe.PermissionError):
        # Stripe's message names the missing permission and masks the key.
        log.error(
            "stripe_misconfigured",
            hint="STRIPE_RESTRICTED_KEY is invalid, revoked, of the other mode, or lacks a "
            "permission this operation needs",
            stripe_message=error.user_message,
            **details,
        )
        return StripeMisconfigured(
            "Queue's Stripe credentials were rejected", operation=operation, source=error
        )
    log.warning("stripe_unavailable", **details)
    return StripeUnavailable(
        "Stripe did not answer successfully; retry later",
        operation=operation,
        source=error,
        headers={"Retry-After": "5"},
    )


def _invalid_request(
    error: stripe.InvalidRequestError,
    details: dict[str, Any],
    operation: str,
    input_params: frozenset[str],
    blame_caller: bool,
) -> StripeGatewayError:
    param = error.param
    if blame_caller or _param_head(param) in input_params:
        log.info("stripe_rejected_input", stripe_param=param, **details)
        message = error.user_message or "Stripe rejected the request"
        return StripeInvalidRequest(
            f"{param}: {message}" if param else message,
            code=_upper_snake(error.code) or "INVALID_REQUEST",
            operation=operation,
            source=error,
        )
    if error.http_status == 404 and error.code == "resource_missing" and param in (None, "id"):
        log.info("stripe_object_missing", **details)
        message = error.user_message or "no such Stripe object"
        return StripeObjectMissing(message, operation=operation, source=error)
    log.error("stripe_rejected_request", stripe_param=param, **details)
    return StripeInvalidRequest(
        "Stripe rejected Queue's request; the operators have the details",
        code="STRIPE_REQUEST_REJECTED",
        status=400,
        operation=operation,
        source=error,
    )


@contextlib.contextmanager
def mapped_errors(
    operation: str, *, input_params: frozenset[str] = frozenset(), blame_caller: bool = False
) -> Iterator[None]:
    try:
        yield
    except stripe.StripeError as error:
        raise map_stripe_error(
            error, operation, input_params=input_params, blame_caller=blame_caller
        ) from None
