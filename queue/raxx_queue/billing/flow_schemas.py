"""Request and response bodies of the write routes (customers, subscribe, Checkout, Portal)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, HttpUrl, StringConstraints

from raxx_queue.vocabulary import QUEUE_CUSTOMER_ID_PATTERN, PaidTier

# Deliberately loose: one @, a dot in the domain, no spaces. Stripe validates further and
# its rejection comes back as a 422 naming the field.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("not an email address")
    return value


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("control characters are not allowed")
    return value


QueueCustomerIdField = Annotated[str, Field(pattern=QUEUE_CUSTOMER_ID_PATTERN)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=254),
    AfterValidator(_printable),
    AfterValidator(_email),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=256),
    AfterValidator(_printable),
]
PaymentMethodId = Annotated[str, Field(pattern=r"^pm_[A-Za-z0-9_]{1,100}$")]


class WriteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_customer_id: QueueCustomerIdField


class CreateCustomerRequest(WriteRequest):
    email: Email | None = None
    name: Name | None = None


class SubscribeRequest(WriteRequest):
    email: Email
    name: Name | None = None
    plan_tier: PaidTier
    payment_method_id: PaymentMethodId


class CheckoutRequest(WriteRequest):
    email: Email
    plan_tier: PaidTier
    success_url: HttpUrl | None = None
    cancel_url: HttpUrl | None = None


class PortalRequest(WriteRequest):
    return_url: HttpUrl | None = None


class SubscribeResponse(BaseModel):
    subscription_id: str
    status: str
    # confirms the first invoice's payment on the client (Stripe.js); None when nothing is due
    client_secret: str | None


class CheckoutResponse(BaseModel):
    session_id: str
    url: str


class PortalResponse(BaseModel):
    url: str
