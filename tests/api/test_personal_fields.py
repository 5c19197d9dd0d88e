"""Which caller sees which personal field of a customer (finding 5): Console sees the
billing e-mail and name, Raptor the record without them, on every route that answers
with a customer."""

from __future__ import annotations

from typing import Any

import pytest

from raxx_queue.api.deps import PERSONAL_FIELDS, Caller
from raxx_queue.billing.schemas import Customer, CustomerRecord
from tests.conftest import AppClient
from tests.support import seed, values
from tests.support.database import Conn

EMAIL = "okonkwo.billing@example.com"
NAME = values.CUSTOMER_NAMES[1]
STORED = {"billing_email": EMAIL, "billing_name": NAME}
HEADERS = {Caller.RAPTOR: values.RAPTOR, Caller.CONSOLE: values.CONSOLE}


def test_every_personal_field_of_a_customer_is_in_the_table() -> None:
    """A field added to Customer but not to CustomerRecord must say who sees it."""
    personal = set(Customer.model_fields) - set(CustomerRecord.model_fields)
    assert personal == set(PERSONAL_FIELDS) == set(STORED)


async def _answers(client: AppClient, caller: Caller) -> list[dict[str, Any]]:
    """The customer as each route answers it to this caller."""
    headers = HEADERS[caller]
    listed = await client.get("/api/v1/billing/customers", headers=headers)
    single = await client.get("/api/v1/billing/customers/cust_pii", headers=headers)
    # create-or-return: an existing customer comes back as stored
    created = await client.post(
        "/api/v1/billing/customers", json={"queue_customer_id": "cust_pii"}, headers=headers
    )
    assert [r.status_code for r in (listed, single, created)] == [200, 200, 200]
    [row] = listed.json()["data"]
    return [row, single.json(), created.json()]


@pytest.mark.parametrize("field", sorted(PERSONAL_FIELDS))
@pytest.mark.parametrize("caller", [Caller.RAPTOR, Caller.CONSOLE])
async def test_a_personal_field_reaches_only_the_callers_the_table_names(
    client: AppClient, db: Conn, field: str, caller: Caller
) -> None:
    await seed.customer(db, "cust_pii", stripe_customer_id="cus_pii", email=EMAIL, name=NAME)
    for answer in await _answers(client, caller):
        assert answer["queue_customer_id"] == "cust_pii"
        assert answer["subscription"]["plan_tier"] == "free"
        if caller in PERSONAL_FIELDS[field]:
            assert answer[field] == STORED[field]
        else:
            assert field not in answer
            assert STORED[field] not in str(answer)
