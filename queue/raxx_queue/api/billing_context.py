"""The write routes' dependency: a BillingContext naming the caller as the audit actor."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from raxx_queue.api.deps import AnyCaller, Caller, RaptorOnly, ServicesDep
from raxx_queue.billing.context import BillingContext
from raxx_queue.errors import request_id_of


def _context(request: Request, services: ServicesDep, caller: Caller) -> BillingContext:
    return BillingContext(
        db=services.db,
        settings=services.settings,
        stripe=services.stripe,
        mirror_wakeup=services.mirror_wakeup,
        audit_wakeup=services.audit_wakeup,
        actor=caller.value,
        request_id=request_id_of(request) or None,
    )


def raptor_context(request: Request, services: ServicesDep, caller: RaptorOnly) -> BillingContext:
    return _context(request, services, caller)


def any_caller_context(
    request: Request, services: ServicesDep, caller: AnyCaller
) -> BillingContext:
    return _context(request, services, caller)


RaptorBilling = Annotated[BillingContext, Depends(raptor_context)]
AnyCallerBilling = Annotated[BillingContext, Depends(any_caller_context)]
