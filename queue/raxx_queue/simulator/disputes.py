"""Disputes at Stripe: the customer's bank disputes a payment, and later the dispute closes.

A dispute names the charge it disputes, not the customer; Queue finds the customer from
the payments it saw, or by reading the charge (`GET /v1/charges/{id}`), which the
simulator keeps for that.
"""

from __future__ import annotations

from typing import Literal

from raxx_queue.simulator import lifecycle
from raxx_queue.simulator.fixtures import fixture
from raxx_queue.simulator.state import StripeApiError, StripeState

CLOSED_STATUSES = frozenset({"won", "lost", "warning_closed", "prevented"})
EVIDENCE_DAYS = 7
Outcome = Literal["won", "lost"]


def open_dispute(state: StripeState, queue_customer_id: str) -> None:
    """The customer's newest payment is disputed (reason `fraudulent`)."""
    customer = lifecycle.customer_of(state, queue_customer_id)
    paid = [
        invoice
        for invoice in state.invoices.values()
        if invoice["customer"] == customer["id"]
        and invoice["status"] == "paid"
        and invoice["amount_paid"] > 0
    ]
    if not paid:
        raise StripeApiError(400, "invalid_request_error", "The customer has no payment.")
    invoice = paid[-1]
    now = state.now()
    charge = fixture("charge")
    charge.update(
        id=state.new_id("ch_"),
        amount=invoice["amount_paid"],
        amount_captured=invoice["amount_paid"],
        currency=invoice["currency"],
        customer=customer["id"],
        created=now,
        disputed=True,
        paid=True,
        status="succeeded",
        livemode=False,
        metadata={},
        billing_details={"address": None, "email": None, "name": None, "phone": None},
        receipt_email=None,
        payment_intent=None,
        payment_method=customer["invoice_settings"]["default_payment_method"],
    )
    state.store(charge)
    dispute = fixture("dispute")
    dispute.update(
        id=state.new_id("dp_"),
        amount=charge["amount"],
        currency=charge["currency"],
        charge=charge["id"],
        payment_intent=None,
        created=now,
        livemode=False,
        metadata={},
        reason="fraudulent",
        status="needs_response",
    )
    dispute["evidence_details"]["due_by"] = now + EVIDENCE_DAYS * lifecycle.DAY
    state.store(dispute)
    state.emit("charge.dispute.created", dispute)


def close_dispute(state: StripeState, queue_customer_id: str, outcome: Outcome) -> None:
    """The customer's open dispute closes: `won` (the merchant keeps the money) or `lost`."""
    customer = lifecycle.customer_of(state, queue_customer_id)
    charges = {
        charge["id"] for charge in state.charges.values() if charge["customer"] == customer["id"]
    }
    open_disputes = [
        dispute
        for dispute in state.disputes.values()
        if dispute["charge"] in charges and dispute["status"] not in CLOSED_STATUSES
    ]
    if not open_disputes:
        raise StripeApiError(400, "invalid_request_error", "The customer has no open dispute.")
    dispute = open_disputes[-1]
    previous = {"status": dispute["status"]}
    dispute["status"] = outcome
    state.emit("charge.dispute.closed", dispute, previous)
