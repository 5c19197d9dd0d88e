"""Golden events: one money story told in the event shapes of each Stripe API version.

The objects come from Stripe's published OpenAPI fixtures of each version
(tests/webhooks/golden/<version>.json, extracted from stripe/openapi's history, MIT
licence as in raxx_queue/simulator/fixtures/LICENSE; the pinned version's from the
simulator's fixtures). Only values are set here: a field is written only where that
version has it, so each event keeps its version's shape (for example the period on the
subscription before 2025-03-31.basil and on its items since; invoice.subscription
before, parent.subscription_details.subscription since; the invoice's charge before,
invoice_payment.paid since).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raxx_queue.simulator.fixtures import fixture
from raxx_queue.stripe_gateway import STRIPE_API_VERSION
from tests.support import values
from tests.support.webhooks import PERIOD_END, T0

Json = dict[str, Any]
GOLDEN = Path(__file__).parent / "golden"
VERSIONS = (
    "2024-09-30.acacia",
    "2025-03-31.basil",
    "2025-09-30.clover",
    "2026-03-25.dahlia",
    STRIPE_API_VERSION,
)
RESOURCES = ("event", "subscription", "invoice", "dispute", "invoice_payment")


def resources(version: str) -> Json:
    """The fixture objects of a version."""
    path = GOLDEN / f"{version}.json"
    if path.exists():
        found: Json = json.loads(path.read_text())["resources"]
        return found
    assert version == STRIPE_API_VERSION, version
    return {name: fixture(name) for name in RESOURCES}


def _set(obj: Json, key: str, value: Any) -> None:
    """Set a field only where this version's object has it."""
    if key in obj:
        obj[key] = value


@dataclass(frozen=True)
class Story:
    """The ids of one customer's story in one version."""

    version: str
    tag: str

    @property
    def res(self) -> Json:
        return resources(self.version)

    def ids(self, prefix: str) -> str:
        return f"{prefix}_{self.tag}"

    def event(self, event_type: str, obj: Json, created: int) -> Json:
        event = copy.deepcopy(self.res["event"])
        event.update(
            id=f"evt_{self.tag}_{created - T0}_{event_type}",
            type=event_type,
            created=created,
            api_version=self.version,
            livemode=False,
            data={"object": obj},
        )
        return event

    def subscription(self, status: str, *, pause: str | None = None) -> Json:
        obj = copy.deepcopy(self.res["subscription"])
        item = copy.deepcopy(obj["items"]["data"][0]) if obj["items"]["data"] else {}
        price = copy.deepcopy(item.get("price") or {})
        price["id"] = values.PRICE_PRO
        item.update(id=self.ids("si"), price=price, subscription=self.ids("sub"))
        for owner in (obj, item):
            _set(owner, "current_period_start", PERIOD_END - 30 * 86_400)
            _set(owner, "current_period_end", PERIOD_END)
        obj.update(
            id=self.ids("sub"),
            customer=self.ids("cus"),
            status=status,
            metadata={"queue_customer_id": self.ids("cust")},
            cancel_at_period_end=False,
            created=T0 - 86_400,
            pause_collection={"behavior": pause, "resumes_at": None} if pause else None,
        )
        obj["items"] = {**obj["items"], "data": [item]}
        for key in ("trial_end", "trial_start", "canceled_at", "ended_at", "cancel_at"):
            _set(obj, key, None)
        if status == "canceled":
            obj.update(canceled_at=T0 + 90, ended_at=T0 + 90)
        return obj

    def invoice(self, status: str, *, attempt_count: int, created: int) -> Json:
        obj = copy.deepcopy(self.res["invoice"])
        obj.update(
            id=self.ids("in"),
            customer=self.ids("cus"),
            status=status,
            attempt_count=attempt_count,
            created=created,
            amount_due=1500,
            amount_paid=1500 if status == "paid" else 0,
            amount_remaining=0 if status == "paid" else 1500,
            currency="usd",
        )
        _set(obj, "subscription", self.ids("sub"))
        _set(obj, "paid", status == "paid")
        _set(obj, "charge", self.ids("ch"))
        _set(obj, "payment_intent", self.ids("pi"))
        if "parent" in obj:
            obj["parent"] = {
                "type": "subscription_details",
                "quote_details": None,
                "subscription_details": {"metadata": {}, "subscription": self.ids("sub")},
            }
        transitions = dict(obj.get("status_transitions") or {})
        transitions["paid_at"] = created if status == "paid" else None
        obj["status_transitions"] = transitions
        return obj

    def invoice_payment(self) -> Json | None:
        """invoice_payment.paid's object, in the versions that have one."""
        if "invoice_payment" not in self.res or "charge" in self.res["invoice"]:
            return None
        obj = copy.deepcopy(self.res["invoice_payment"])
        obj.update(
            id=self.ids("inpay"),
            invoice=self.ids("in"),
            payment={"type": "charge", "charge": self.ids("ch")},
            status="paid",
        )
        return obj

    def dispute(self, status: str) -> Json:
        obj = copy.deepcopy(self.res["dispute"])
        obj.update(id=self.ids("dp"), charge=self.ids("ch"), status=status, created=T0)
        _set(obj, "payment_intent", None)
        return obj

    def steps(self) -> list[tuple[str, list[Json]]]:
        """(step name, its events), in order: the same story whatever the version."""
        paid = [
            self.event(
                "invoice.paid", self.invoice("paid", attempt_count=2, created=T0 + 30), T0 + 30
            )
        ]
        payment = self.invoice_payment()
        if payment is not None:
            paid.append(self.event("invoice_payment.paid", payment, T0 + 31))
        make: list[tuple[str, Callable[[], list[Json]]]] = [
            (
                "subscribed",
                lambda: [
                    self.event("customer.subscription.created", self.subscription("active"), T0)
                ],
            ),
            (
                "payment failed",
                lambda: [
                    self.event(
                        "invoice.payment_failed",
                        self.invoice("open", attempt_count=1, created=T0 + 10),
                        T0 + 10,
                    )
                ],
            ),
            ("paid", lambda: paid),
            (
                "disputed",
                lambda: [
                    self.event("charge.dispute.created", self.dispute("needs_response"), T0 + 40)
                ],
            ),
            (
                "dispute won",
                lambda: [self.event("charge.dispute.closed", self.dispute("won"), T0 + 50)],
            ),
            (
                "collection paused",
                lambda: [
                    self.event(
                        "customer.subscription.updated",
                        self.subscription("active", pause="void"),
                        T0 + 60,
                    )
                ],
            ),
            (
                "paused",
                lambda: [
                    self.event("customer.subscription.paused", self.subscription("paused"), T0 + 70)
                ],
            ),
            (
                "resumed",
                lambda: [
                    self.event(
                        "customer.subscription.resumed", self.subscription("active"), T0 + 80
                    )
                ],
            ),
            (
                "canceled",
                lambda: [
                    self.event(
                        "customer.subscription.deleted", self.subscription("canceled"), T0 + 90
                    )
                ],
            ),
        ]
        return [(name, build()) for name, build in make]
