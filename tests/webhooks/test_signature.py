"""Signature verification: every failure is 400 INVALID_SIGNATURE and stores nothing."""

from __future__ import annotations

import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raxx_queue.simulator.events import event_body, sign, sign_multi, signed
from raxx_queue.webhooks.signature import InvalidSignature, verify_signature
from tests.conftest import AppFactory
from tests.support import values
from tests.support.database import TABLES, Conn
from tests.support.logs import CapturedLogs
from tests.support.webhooks import WEBHOOK, customer_event, deliver, subscription_event

TOLERANCE = 300


async def _nothing_stored(db: Conn) -> None:
    for table in TABLES:
        assert await db.fetchval(f"SELECT count(*) FROM {table}") == 0, table  # noqa: S608


async def _post(client: httpx.AsyncClient, body: bytes, header: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if header is not None:
        headers["Stripe-Signature"] = header
    return await client.post(WEBHOOK, content=body, headers=headers)


async def test_valid_signature_is_applied(client: httpx.AsyncClient, db: Conn) -> None:
    response = await deliver(client, subscription_event("customer.subscription.created"))
    assert response.status_code == 200
    assert response.json()["outcome"] == "applied"
    assert response.json()["received"] is True


async def test_rotation_old_and_new_secrets(app_factory: AppFactory, db: Conn) -> None:
    secrets = f"{values.WEBHOOK_SECRET},{values.OLD_WEBHOOK_SECRET}"
    async with app_factory(stripe_webhook_secret=secrets) as client:
        old = subscription_event("customer.subscription.created", sub="sub_old")
        assert (await deliver(client, old, secret=values.OLD_WEBHOOK_SECRET)).status_code == 200
        new = subscription_event("customer.subscription.created", sub="sub_new")
        assert (await deliver(client, new, secret=values.WEBHOOK_SECRET)).status_code == 200
        # Stripe sends one v1 per active secret while a rotation is under way
        both = event_body(subscription_event("customer.subscription.created", sub="sub_both"))
        header = sign_multi(both, ["whsec_unknown_secret", values.OLD_WEBHOOK_SECRET])
        assert (await _post(client, both, header)).status_code == 200
        metrics = (await client.get("/metrics", headers=values.CONSOLE)).text
        assert 'queue_webhook_secret_matches_total{secret_index="1"}' in metrics
    assert await db.fetchval("SELECT count(*) FROM processed_stripe_events") == 3


def _case(name: str) -> tuple[bytes, str | None]:
    """Built when the test runs: timestamps must be relative to that moment."""
    return {case: (body, header) for case, body, header in _cases()}[name]


def _cases() -> list[tuple[str, bytes, str | None]]:
    event = subscription_event("customer.subscription.created")
    body = event_body(event)
    now = int(time.time())
    good = sign(body, values.WEBHOOK_SECRET)
    reserialised = event_body(event).replace(b'"', b'"', 1).replace(b",", b", ", 1)
    return [
        ("tampered body", body.replace(b"active", b"trialing", 1), good),
        ("re-serialised body", reserialised, good),
        ("wrong secret", body, sign(body, "whsec_someone_else")),
        ("missing header", body, None),
        ("empty header", body, ""),
        ("garbled header", body, "garbage"),
        ("no timestamp", body, good.split(",", 1)[1]),
        ("non-numeric timestamp", body, good.replace("t=", "t=abc", 1)),
        ("v0 only", body, sign(body, values.WEBHOOK_SECRET, scheme="v0")),
        ("stale", body, sign(body, values.WEBHOOK_SECRET, now - TOLERANCE - 1)),
        # a few seconds past the edge: the clock moves on between signing and checking
        ("future", body, sign(body, values.WEBHOOK_SECRET, now + TOLERANCE + 5)),
        ("invalid JSON", b"{not json", sign(b"{not json", values.WEBHOOK_SECRET)),
        ("non-UTF-8 body", b"\xff\xfe{}", sign(b"{}", values.WEBHOOK_SECRET)),
    ]


@pytest.mark.parametrize("case", [c[0] for c in _cases()])
async def test_bad_deliveries_are_400_and_store_nothing(
    client: httpx.AsyncClient, db: Conn, case: str
) -> None:
    body, header = _case(case)
    response = await _post(client, body, header)
    assert response.status_code == 400, case
    assert response.json()["error"]["code"] == "INVALID_SIGNATURE"
    await _nothing_stored(db)


async def test_signed_invalid_json_is_400(client: httpx.AsyncClient, db: Conn) -> None:
    payload = b'{"id": "evt_1", "type": '
    response = await _post(client, payload, sign(payload, values.WEBHOOK_SECRET))
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_SIGNATURE"
    await _nothing_stored(db)


async def test_edges_of_the_tolerance_are_accepted(client: httpx.AsyncClient, db: Conn) -> None:
    now = int(time.time())
    for offset, sub in ((-TOLERANCE + 5, "sub_past"), (TOLERANCE - 5, "sub_future")):
        event = subscription_event("customer.subscription.created", sub=sub)
        body, header = signed(event, values.WEBHOOK_SECRET, timestamp=now + offset)
        assert (await _post(client, body, header)).status_code == 200


async def test_rejections_are_logged_without_secrets(
    client: httpx.AsyncClient, db: Conn, captured_logs: CapturedLogs
) -> None:
    event = customer_event("customer.created")
    body = event_body(event)
    await _post(client, body, sign(body, "whsec_wrong_secret_value"))
    assert captured_logs.logged(reason="no_match")
    captured_logs.assert_free_of([*values.SECRETS, "whsec_wrong_secret_value", "jenny.rosen"])
    metrics = (await client.get("/metrics", headers=values.CONSOLE)).text
    assert 'queue_webhook_signature_failures_total{reason="no_match"}' in metrics


async def test_unconfigured_secret_is_503(app_factory: AppFactory, db: Conn) -> None:
    async with app_factory(stripe_webhook_secret="") as client:
        response = await deliver(client, customer_event("customer.created"))
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "WEBHOOK_NOT_CONFIGURED"
    await _nothing_stored(db)


# {now} is the time of the request: only a fresh timestamp reaches the signature check
@pytest.mark.parametrize(
    "header",
    [
        "t=" + "9" * 309 + ",v1=" + "a" * 64,  # past the largest float
        "t=" + "9" * 5000 + ",v1=" + "a" * 64,  # past int()'s digit limit
        "t={now},v1=" + "\u00e9" * 64,
        "t={now},v1=" + "A" * 64,
        "t={now},v1=" + "a" * 63,
        "t=-{now},v1=" + "a" * 64,
        "t={now} ,v1=" + "a" * 64,
        "t={now},v1",
        "=,=,=",
        ",",
        "t={now},t={now},v1=" + "a" * 64,
        "\u0000t={now},v1=" + "a" * 64,
    ],
    ids=[
        "309 digits",
        "5000 digits",
        "non-ASCII v1",
        "upper-case v1",
        "short v1",
        "negative t",
        "space after t",
        "v1 without value",
        "empty keys",
        "empty items",
        "two timestamps",
        "NUL before key",
    ],
)
async def test_malformed_headers_are_400_never_500(
    client: httpx.AsyncClient, db: Conn, header: str
) -> None:
    body = event_body(subscription_event("customer.subscription.created"))
    header = header.replace("{now}", str(int(time.time())))
    response = await client.post(
        WEBHOOK, content=body, headers={"Stripe-Signature": header.encode("latin-1", "replace")}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "INVALID_SIGNATURE"
    await _nothing_stored(db)


async def test_an_old_delivery_cannot_pass_with_a_second_fresh_timestamp(
    client: httpx.AsyncClient, db: Conn
) -> None:
    """A week-old signed delivery, resent with a fresh `t` beside the one it was signed at."""
    body = event_body(subscription_event("customer.subscription.created"))
    week_ago = int(time.time()) - 7 * 86_400
    old = sign(body, values.WEBHOOK_SECRET, week_ago)
    signature = old.split("v1=", 1)[1]
    now = int(time.time())
    for header in (
        f"v1={signature}, t={now},t={week_ago}",
        f"v1={signature},t={now},t={week_ago}",
        f"t={week_ago},t={now},v1={signature}",
        f"t={now},v1={signature},t={week_ago}",
    ):
        assert (await _post(client, body, header)).status_code == 400, header
    await _nothing_stored(db)


NOW = 1_800_000_000
_ITEMS = st.one_of(
    st.text("t=v01, ", max_size=8),
    st.builds("t={}".format, st.one_of(st.just(NOW), st.text("0123456789-", max_size=400))),
    st.builds("v1={}".format, st.text("0123456789abcdefABC\u00e9 ", max_size=80)),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x2FF), max_size=40),
)
HEADERS = st.one_of(
    st.lists(_ITEMS, max_size=6).map(",".join),
    st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=300),
)


@settings(max_examples=3000, deadline=None)
@given(header=HEADERS)
def test_any_header_is_verified_or_invalid_signature(header: str) -> None:
    """The parser is total: whatever the header, InvalidSignature or a match, nothing else."""
    try:
        verify_signature(b"{}", header, [values.WEBHOOK_SECRET], TOLERANCE, NOW)
    except InvalidSignature:
        return
    raise AssertionError("an unsigned body was accepted")
