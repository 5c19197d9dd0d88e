"""Request dependencies: services, the callers and what each may do, the billing flag.

The permission table of SPEC §3 is declared once, here (PERMISSIONS), next to the
aliases the routes use; each alias names its permission, and the auth matrix test
reads both off the app.
"""

from __future__ import annotations

import enum
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated

import structlog
from fastapi import Depends, FastAPI, Path, Request
from starlette.types import Scope

from raxx_queue.audit.sealer import AuditSealer
from raxx_queue.billing.context import BillingContext
from raxx_queue.billing.grace import GraceExpiryJob
from raxx_queue.db.migrate import SchemaHead
from raxx_queue.db.pool import Database
from raxx_queue.errors import BillingDisabled, Forbidden, Unauthenticated, request_id_of
from raxx_queue.mirror.dispatcher import MirrorDispatcher
from raxx_queue.settings import Settings
from raxx_queue.stripe_gateway import StripeGateway
from raxx_queue.vocabulary import QUEUE_CUSTOMER_ID_PATTERN, Actor
from raxx_queue.wakeups import BackgroundWorker, Wakeups
from raxx_queue.webhooks.batching import EventBatcher, lane_depth
from raxx_queue.webhooks.catchup_worker import EventCatchup
from raxx_queue.webhooks.retention import EventRetentionJob


class Caller(enum.StrEnum):
    RAPTOR = "raptor"
    CONSOLE = "console"
    # the metrics scraper (METRICS_TOKEN): reads /metrics and nothing else
    METRICS = "metrics"


ACTOR_OF: Mapping[Caller, Actor] = MappingProxyType(
    {Caller.RAPTOR: "raptor", Caller.CONSOLE: "console"}
)


class Permission(enum.Enum):
    """What a route does, as SPEC §3's caller table names it."""

    BILLING_READ = "billing reads (customers, subscriptions, invoices)"
    CUSTOMER_CREATE = "create a billing customer"
    PAYMENT_PAGES = "subscribe, Checkout, Customer Portal"
    MIRROR_SYNC = "mirror-sync"
    MIRROR_DIGEST = "mirror digest (drift check)"
    OPERATIONS = "reconcile, audit verification"
    METRICS = "metrics"
    ERASURE = "erase a customer's personal data"


# Routes Stripe calls: authenticated by the `Stripe-Signature` of their body (each with
# its own secrets), never by a service token.
STRIPE_SIGNED_ROUTES = frozenset({"/api/v1/billing/webhook", "/api/v1/billing/webhook/thin"})

PERMISSIONS: Mapping[Permission, frozenset[Caller]] = MappingProxyType(
    {
        Permission.BILLING_READ: frozenset({Caller.RAPTOR, Caller.CONSOLE}),
        Permission.CUSTOMER_CREATE: frozenset({Caller.RAPTOR, Caller.CONSOLE}),
        Permission.PAYMENT_PAGES: frozenset({Caller.RAPTOR}),
        Permission.MIRROR_SYNC: frozenset({Caller.RAPTOR, Caller.CONSOLE}),
        Permission.MIRROR_DIGEST: frozenset({Caller.RAPTOR, Caller.CONSOLE}),
        Permission.OPERATIONS: frozenset({Caller.CONSOLE}),
        Permission.METRICS: frozenset({Caller.RAPTOR, Caller.CONSOLE, Caller.METRICS}),
        Permission.ERASURE: frozenset({Caller.CONSOLE}),
    }
)


# Personal fields of a response → the callers that see them; anyone else gets the record
# without them (Raptor's paywall needs the subscription, not who pays for it).
PERSONAL_FIELDS: Mapping[str, frozenset[Caller]] = MappingProxyType(
    {
        "billing_email": frozenset({Caller.CONSOLE}),
        "billing_name": frozenset({Caller.CONSOLE}),
    }
)


def hidden_fields(caller: Caller) -> frozenset[str]:
    """The personal fields this caller may not see."""
    return frozenset(name for name, callers in PERSONAL_FIELDS.items() if caller not in callers)


@dataclass
class Workers:
    """The background workers of the process (None where not running)."""

    sealer: AuditSealer | None = None
    grace: GraceExpiryJob | None = None
    catchup: EventCatchup | None = None
    mirror: MirrorDispatcher | None = None
    retention: EventRetentionJob | None = None

    def running(self) -> list[BackgroundWorker]:
        """In start order; the mirror dispatcher last, so it stops first and its pushes
        in flight finish within its grace."""
        workers = (self.sealer, self.grace, self.catchup, self.retention, self.mirror)
        return [w for w in workers if w is not None]


@dataclass
class Services:
    """Everything the lifespan owns, reachable from a request."""

    settings: Settings
    db: Database
    schema_head: SchemaHead | None = None
    # None when no Stripe key is configured: routes needing Stripe answer 503
    stripe: StripeGateway | None = None
    wakeups: Wakeups = field(default_factory=Wakeups)
    workers: Workers = field(default_factory=Workers)
    # Stripe's deliveries to the database, several per statement when they arrive together
    batcher: EventBatcher = field(init=False)

    def __post_init__(self) -> None:
        self.batcher = EventBatcher(self.db, lane_depth(self.settings.web_concurrency))


# Dependencies are `async def`: FastAPI runs plain `def` dependencies in a thread
# pool, a thread hop per request for what is only attribute access.


def services_of(request: Request) -> Services:
    return app_services(request.app)


def app_services(app: FastAPI) -> Services:
    """What the app's lifespan owns (set once it has started)."""
    services: Services = app.state.services
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


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def caller_of(settings: Settings, authorization: str | None) -> Caller | None:
    """The caller whose service token an `Authorization` header bears, or None. Every
    configured token of every caller is compared in constant time, with no early exit
    (a caller may hold several while one is being rotated)."""
    token = _bearer(authorization)
    if token is None:
        return None
    presented = token.encode()
    matched: Caller | None = None
    for name, tokens in settings.service_tokens().items():
        for expected in tokens:
            if hmac.compare_digest(presented, expected.encode()):
                matched = Caller(name)
    return matched


def admit_caller(scope: Scope, caller: Caller) -> None:
    """Name the identified caller in the request's log line and its log context."""
    scope.setdefault("state", {})["caller"] = caller.value
    structlog.contextvars.bind_contextvars(caller=caller.value)


def identify_caller(request: Request) -> Caller:
    """The caller of a request, by its bearer token (caller_of); else Unauthenticated."""
    caller = caller_of(services_of(request).settings, request.headers.get("authorization"))
    if caller is None:
        raise Unauthenticated()
    admit_caller(request.scope, caller)
    return caller


def known_caller(request: Request) -> Caller | None:
    """The caller a request's token names, or None (for routes open to anyone)."""
    try:
        return identify_caller(request)
    except Unauthenticated:
        return None


class Allow:
    """The dependency admitting the callers PERMISSIONS gives a permission."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission
        self.callers = PERMISSIONS[permission]

    async def __call__(self, request: Request) -> Caller:
        caller = identify_caller(request)
        if caller not in self.callers:
            raise Forbidden()
        return caller


BillingReader = Annotated[Caller, Depends(Allow(Permission.BILLING_READ))]
CustomerCreator = Annotated[Caller, Depends(Allow(Permission.CUSTOMER_CREATE))]
PaymentPages = Annotated[Caller, Depends(Allow(Permission.PAYMENT_PAGES))]
MirrorSyncer = Annotated[Caller, Depends(Allow(Permission.MIRROR_SYNC))]
MirrorDigestReader = Annotated[Caller, Depends(Allow(Permission.MIRROR_DIGEST))]
Operator = Annotated[Caller, Depends(Allow(Permission.OPERATIONS))]
MetricsReader = Annotated[Caller, Depends(Allow(Permission.METRICS))]
Eraser = Annotated[Caller, Depends(Allow(Permission.ERASURE))]

QueueCustomerId = Annotated[
    str, Path(pattern=QUEUE_CUSTOMER_ID_PATTERN, description="the platform's customer id")
]


def _billing_context(request: Request, services: Services, caller: Caller) -> BillingContext:
    """What a write flow needs, naming the caller as the audit actor."""
    return BillingContext(
        db=services.db,
        settings=services.settings,
        stripe=services.stripe,
        actor=ACTOR_OF[caller],
        request_id=request_id_of(request) or None,
    )


async def payment_pages_context(
    request: Request, services: ServicesDep, caller: PaymentPages
) -> BillingContext:
    return _billing_context(request, services, caller)


async def customer_creator_context(
    request: Request, services: ServicesDep, caller: CustomerCreator
) -> BillingContext:
    return _billing_context(request, services, caller)


async def eraser_context(request: Request, services: ServicesDep, caller: Eraser) -> BillingContext:
    return _billing_context(request, services, caller)


PaymentPagesBilling = Annotated[BillingContext, Depends(payment_pages_context)]
CustomerCreatorBilling = Annotated[BillingContext, Depends(customer_creator_context)]
EraserBilling = Annotated[BillingContext, Depends(eraser_context)]
