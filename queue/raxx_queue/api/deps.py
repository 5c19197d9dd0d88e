"""Request dependencies: services, callers and their permissions, the billing flag."""

from __future__ import annotations

import enum
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import structlog
from fastapi import Depends, Path, Request

from raxx_queue.db.pool import Database
from raxx_queue.errors import BillingDisabled, Forbidden, Unauthenticated
from raxx_queue.settings import Settings
from raxx_queue.stripe_gateway import StripeGateway
from raxx_queue.wakeups import Wakeup

QUEUE_CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class Caller(enum.StrEnum):
    RAPTOR = "raptor"
    CONSOLE = "console"


@dataclass
class Services:
    """Everything the lifespan owns, reachable from a request."""

    settings: Settings
    db: Database
    schema_head: str | None = None
    # None when no Stripe key is configured: routes needing Stripe answer 503
    stripe: StripeGateway | None = None
    mirror_wakeup: Wakeup = field(default_factory=Wakeup)
    audit_wakeup: Wakeup = field(default_factory=Wakeup)
    extras: dict[str, Any] = field(default_factory=dict)


# Dependencies are `async def`: FastAPI runs plain `def` dependencies in a thread
# pool, a thread hop per request for what is only attribute access.


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_db(request: Request) -> Database:
    return services_of(request).db


DatabaseDep = Annotated[Database, Depends(get_db)]


async def require_billing_enabled(request: Request) -> None:
    """The kill switch: every /api route answers 503 while FLAG_QUEUE_BILLING is false."""
    if not services_of(request).settings.flag_queue_billing:
        raise BillingDisabled()


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def identify_caller(request: Request) -> Caller:
    """Match the bearer token against every configured caller in constant time."""
    token = _bearer(request)
    if token is None:
        raise Unauthenticated()
    presented = token.encode()
    matched: Caller | None = None
    for name, expected in services_of(request).settings.service_tokens().items():
        # compare against all callers, no early exit
        if hmac.compare_digest(presented, expected.encode()):
            matched = Caller(name)
    if matched is None:
        raise Unauthenticated()
    request.scope.setdefault("state", {})["caller"] = matched.value
    structlog.contextvars.bind_contextvars(caller=matched.value)
    return matched


def allow(*callers: Caller) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency admitting only the given callers (SPEC §3 permission table)."""

    async def dependency(request: Request) -> Caller:
        caller = identify_caller(request)
        if caller not in callers:
            raise Forbidden()
        return caller

    return dependency


AnyCaller = Annotated[Caller, Depends(allow(Caller.RAPTOR, Caller.CONSOLE))]
RaptorOnly = Annotated[Caller, Depends(allow(Caller.RAPTOR))]
ConsoleOnly = Annotated[Caller, Depends(allow(Caller.CONSOLE))]
QueueCustomerId = Annotated[
    str, Path(pattern=QUEUE_CUSTOMER_ID_PATTERN, description="the platform's customer id")
]
