"""The dev Raptor sink verifies signed pushes with the Standard Webhooks reference library."""

from __future__ import annotations

import httpx

from raxx_queue.jsonio import dumps
from raxx_queue.simulator.raptor_sink import RaptorSink
from tests.mirror.steps import signer
from tests.support import values

ROW = {"queue_customer_id": "cust_sink", "plan_tier": "pro", "version": 3}


def test_the_sink_takes_signed_pushes_and_refuses_the_others() -> None:
    printed: list[str] = []
    body = dumps(ROW)
    bearer = {"Authorization": f"Bearer {values.MIRROR_TOKEN}"}
    signed = signer(values.NEW_MIRROR_SIGNING_SECRET, values.MIRROR_SIGNING_SECRET)
    other = signer(values.NEW_MIRROR_SIGNING_SECRET)
    with RaptorSink(
        values.MIRROR_TOKEN, printed.append, signing_secrets=[values.MIRROR_SIGNING_SECRET]
    ) as sink:
        unsigned = httpx.post(sink.url, content=body, headers=bearer)
        wrong = httpx.post(
            sink.url, content=body, headers={**bearer, **other.headers("msg_1", body)}
        )
        right = httpx.post(
            sink.url, content=body, headers={**bearer, **signed.headers("msg_1", body)}
        )
    assert (unsigned.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert sink.rows == {"cust_sink": ROW}
    assert printed == ["raptor  cust_sink v3: plan_tier=pro"]
