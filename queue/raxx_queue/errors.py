"""The service's one error shape and the handlers that render it (SPEC §3)."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from raxx_queue.jsonio import FastJSONResponse

log = structlog.get_logger(__name__)


class ServiceError(Exception):
    """A domain error that knows its HTTP status and public code."""

    status = 400
    code = "BAD_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}


class NotFound(ServiceError):
    status = 404
    code = "NOT_FOUND"


class CustomerNotFound(NotFound):
    code = "CUSTOMER_NOT_FOUND"

    def __init__(self) -> None:
        super().__init__("no billing customer with that queue_customer_id")


class ValidationFailed(ServiceError):
    status = 422
    code = "VALIDATION_ERROR"


class Unauthenticated(ServiceError):
    status = 401
    code = "UNAUTHENTICATED"

    def __init__(self) -> None:
        super().__init__(
            "a valid service token is required", headers={"WWW-Authenticate": "Bearer"}
        )


class Forbidden(ServiceError):
    status = 403
    code = "FORBIDDEN"

    def __init__(self) -> None:
        super().__init__("this caller may not use this route")


class BillingDisabled(ServiceError):
    status = 503
    code = "BILLING_DISABLED"

    def __init__(self) -> None:
        super().__init__("billing is switched off", headers={"Retry-After": "60"})


class DatabaseUnavailable(ServiceError):
    status = 503
    code = "DATABASE_UNAVAILABLE"

    def __init__(self) -> None:
        super().__init__("the database is unavailable", headers={"Retry-After": "5"})


HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
    503: "SERVICE_UNAVAILABLE",
}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """The one error shape, as documented in the OpenAPI schema."""

    error: ErrorDetail
    request_id: str


ERROR_DESCRIPTIONS = {
    400: "malformed request",
    401: "missing or unknown service token",
    402: "the card was declined",
    403: "this caller may not use this route",
    404: "not found",
    409: "conflicts with the current state",
    413: "request body over 1 MiB",
    422: "validation failed",
    502: "Stripe failed or rejected Queue's credentials",
    503: "billing switched off, database or a dependency unavailable; retry",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` for error statuses, all in the one error shape."""
    return {
        status: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", ""))


def error_body(code: str, message: str, request_id: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, "request_id": request_id}


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> FastJSONResponse:
    return FastJSONResponse(
        error_body(code, message, request_id_of(request)), status_code=status, headers=headers
    )


def _validation_message(error: RequestValidationError) -> str:
    parts = []
    for item in error.errors()[:5]:
        loc = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{loc or 'body'}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def _service_error(request: Request, exc: Exception) -> FastJSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(request, exc.status, exc.code, exc.message, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> FastJSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(request, 422, "VALIDATION_ERROR", _validation_message(exc))


async def _http_error(request: Request, exc: Exception) -> FastJSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    message = exc.detail if isinstance(exc.detail, str) else code.lower().replace("_", " ")
    return error_response(request, exc.status_code, code, message, dict(exc.headers or {}))


async def _unexpected_error(request: Request, exc: Exception) -> FastJSONResponse:
    # the exception type only: messages of driver errors can carry parameters
    log.error("unhandled_error", error_type=type(exc).__name__, path=request.url.path)
    return error_response(request, 500, "INTERNAL_ERROR", "internal error")


def install_error_handlers(app: FastAPI) -> None:
    """Render every error, including framework ones, in the one shape of SPEC §3."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
