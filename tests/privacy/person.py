"""One person's billing history in Stripe's own event shapes, and a scan for what is theirs."""

from __future__ import annotations

import json
from typing import Any

from raxx_queue.simulator.events import build_event, customer_obj, invoice_obj
from raxx_queue.simulator.fixtures import fixture
from tests.support import values
from tests.support.database import Conn
from tests.support.webhooks import T0, subscription_event

QUEUE_ID = "cust_erase"
CUSTOMER = "cus_erase1"
EMAIL = "ada.lovelace@erasure.example"
NAME = "Ada Lovelace"
PHONE = "+442079460958"
LINE1 = "12 Analytical Row"
LINE2 = "Flat 3b Difference Court"
POSTAL = "NW1 6XE"
FINGERPRINT = "Fp7ErasureTest1"
LAST4 = "8431"
NOTE = "call Ada on her mobile"
# what must not survive erasure anywhere; last4 as a JSON string, so epochs never match
NEEDLES = (EMAIL, NAME, "Lovelace", PHONE, LINE1, LINE2, POSTAL, FINGERPRINT, f'"{LAST4}"', NOTE)

ADDRESS = {
    "line1": LINE1,
    "line2": LINE2,
    "city": "London",
    "postal_code": POSTAL,
    "state": None,
    "country": "GB",
}
DETAILS = {"email": EMAIL, "name": NAME, "phone": PHONE, "address": ADDRESS, "tax_id": None}
Event = dict[str, Any]


def _card(obj: dict[str, Any]) -> None:
    obj.update(last4=LAST4, fingerprint=FINGERPRINT, exp_month=4, exp_year=2031)


def customer(email: str = EMAIL, name: str = NAME, *, created: int = T0) -> dict[str, Any]:
    obj = customer_obj(CUSTOMER, email, name, QUEUE_ID, created=created, metadata={"note": NOTE})
    obj.update(
        phone=PHONE, address=ADDRESS, shipping={"name": NAME, "phone": PHONE, "address": ADDRESS}
    )
    return obj


def invoice(
    invoice_id: str, status: str, *, created: int, attempt_count: int = 0
) -> dict[str, Any]:
    obj = invoice_obj(
        invoice_id,
        CUSTOMER,
        "sub_erase1",
        status,
        created=created,
        price_id=values.PRICE_PRO,
        attempt_count=attempt_count,
    )
    obj.update(
        customer_email=EMAIL,
        customer_name=NAME,
        customer_phone=PHONE,
        customer_address=ADDRESS,
        customer_shipping={"name": NAME, "phone": PHONE, "address": ADDRESS},
        hosted_invoice_url=f"https://invoice.stripe.test/{invoice_id}",
    )
    return obj


def charge(*, created: int) -> dict[str, Any]:
    obj = fixture("charge")
    obj.update(
        id="ch_erase1",
        customer=CUSTOMER,
        created=created,
        billing_details=DETAILS,
        receipt_email=EMAIL,
        status="failed",
        metadata={"note": NOTE},
    )
    _card(obj["payment_method_details"]["card"])
    return obj


def history() -> list[Event]:
    """Customer, card, subscription, invoices paid and failed, a failed charge, a dispute."""
    method = fixture("payment_method")
    method.update(id="pm_erase1", customer=CUSTOMER, billing_details=DETAILS, created=T0)
    _card(method["card"])
    dispute = fixture("dispute")
    dispute.update(id="dp_erase1", charge="ch_erase1", created=T0 + 60, amount=2000)
    dispute["evidence"].update(
        customer_email_address=EMAIL,
        customer_name=NAME,
        billing_address=f"{LINE1}, {LINE2}, London {POSTAL}",
        uncategorized_text=NOTE,
    )
    return [
        build_event("customer.created", customer(), created=T0),
        build_event("payment_method.attached", method, created=T0 + 1),
        subscription_event(
            "customer.subscription.created",
            sub="sub_erase1",
            customer=CUSTOMER,
            queue_customer_id=QUEUE_ID,
            created=T0 + 2,
        ),
        build_event(
            "invoice.finalized", invoice("in_erase1", "open", created=T0 + 3), created=T0 + 3
        ),
        build_event("invoice.paid", invoice("in_erase1", "paid", created=T0 + 3), created=T0 + 4),
        build_event(
            "invoice.payment_failed",
            invoice("in_erase2", "open", created=T0 + 40, attempt_count=1),
            created=T0 + 40,
        ),
        build_event("charge.failed", charge(created=T0 + 40), created=T0 + 41),
        build_event("charge.dispute.created", dispute, created=T0 + 60),
    ]


def another(k: int, events: list[Event]) -> tuple[list[Event], tuple[str, ...]]:
    """The same history for person k (other ids, e-mail, name, phone, address, card),
    and that person's needles."""
    swaps = {
        CUSTOMER: f"cus_erase{k}x",
        QUEUE_ID: f"{QUEUE_ID}_{k}",
        "sub_erase1": f"sub_erase{k}x",
        "in_erase": f"in_erase{k}x",
        "ch_erase1": f"ch_erase{k}x",
        "pm_erase1": f"pm_erase{k}x",
        "dp_erase1": f"dp_erase{k}x",
        "evt_": f"evt_{k}x",
        EMAIL: f"person{k}@erasure.example",
        "Lovelace": f"Person{k}surname",
        PHONE: f"+4420794609{k:02d}",
        LINE1: f"{k} Analytical Row",
        LINE2: f"Flat {k} Difference Court",
        POSTAL: f"NW{k} 6XE",
        FINGERPRINT: f"Fp{k}ErasureTest",
        LAST4: f"77{k:02d}",
        NOTE: f"call person {k} on the mobile",
    }
    text = json.dumps(events)
    needles = [*NEEDLES]
    for old, new in swaps.items():
        text = text.replace(old, new)
        needles = [n.replace(old, new) for n in needles]
    return json.loads(text), tuple(needles)


async def tables(conn: Conn) -> list[str]:
    rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    return sorted(r["tablename"] for r in rows)


async def scan(conn: Conn, needles: tuple[str, ...] = NEEDLES) -> dict[str, list[str]]:
    """table → the needles found in any of its columns, every row read as text."""
    found: dict[str, list[str]] = {}
    for table in await tables(conn):
        dump = await conn.fetchval(
            f"SELECT coalesce(string_agg(to_jsonb(t)::text, E'\\n'), '') FROM {table} AS t"  # noqa: S608
        )
        hits = [needle for needle in needles if needle in dump]
        if hits:
            found[table] = hits
    return found
