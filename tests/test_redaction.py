"""Redaction stays linear: no crafted string can hold the event loop (security finding 1)."""

from __future__ import annotations

import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from raxx_queue.redaction import (
    _SECRET_SHAPES,
    MAX_SCANNED_CHARS,
    REDACTED,
    Redactor,
    may_hold_secret_shape,
    redact_emails,
)

MIB = 1024 * 1024
# A linear scan of 1 MiB takes milliseconds even on a loaded machine; the quadratic
# pattern this replaced needed about an hour for it (16 KiB took a second).
BOUND_SECONDS = 5.0

ADVERSARIAL = {
    "one run of address characters, then @": "a" * (MIB - 1) + "@",
    "dots and letters, then @": "a." * (MIB // 2 - 1) + "@b",
    "a run with URL-encoded @ throughout": "x%40" * (MIB // 4),
    "@ after every character": "a@" * (MIB // 2),
    "domains without a top-level domain": "a@b." * (MIB // 4),
    "long local part, long domain, no TLD": "a" * (MIB // 2) + "@" + "b" * (MIB // 2 - 1),
}


@pytest.mark.parametrize("shape", ADVERSARIAL)
def test_email_redaction_of_1_mib_is_linear(shape: str) -> None:
    text = ADVERSARIAL[shape]
    assert len(text) >= MIB - 2
    started = time.perf_counter()
    redact_emails(text)
    elapsed = time.perf_counter() - started
    assert elapsed < BOUND_SECONDS, f"{shape}: {elapsed:.1f} s for 1 MiB"


def test_redactor_never_scans_or_keeps_a_huge_string() -> None:
    redactor = Redactor()
    huge = "jenny.rosen@example.com " * (MAX_SCANNED_CHARS // 10)
    started = time.perf_counter()
    redacted = redactor.text(huge)
    assert time.perf_counter() - started < BOUND_SECONDS
    assert "jenny.rosen" not in redacted
    assert len(redacted) < 100


def test_long_strings_are_cut_after_redaction() -> None:
    redactor = Redactor()
    text = "x" * 20_000 + " jenny.rosen@example.com"
    redacted = redactor.text(text)
    assert "jenny.rosen" not in redacted
    assert len(redacted) < 9_000
    assert redacted.endswith("characters cut)")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jenny.rosen@example.com now", f"mail {REDACTED} now"),
        ("?email=jenny%40example.com&x=1", f"?email={REDACTED}&x=1"),
        ("a@b.co,c@d.org", f"{REDACTED},{REDACTED}"),
        ("user@localhost", "user@localhost"),  # no top-level domain: not an address
        ("no address here", "no address here"),
    ],
)
def test_email_shapes(text: str, expected: str) -> None:
    assert redact_emails(text) == expected


def _every_rule(text: str, secrets: tuple[str, ...] = ()) -> str:
    """What Redactor.text must return for a short string: each secret (longest first),
    then e-mail addresses, then secret shapes, each replaced in full."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _SECRET_SHAPES.sub(REDACTED, redact_emails(text))


# pieces of the secret shapes, in both cases and with the characters re's IGNORECASE
# takes for ASCII letters (U+017F, the long s, for s; U+212A, the Kelvin sign, for k)
SHAPE_PIECES = st.sampled_from(
    [
        "sk",
        "rk",
        "pk",
        "_test_",
        "_live_",
        "wh",
        "sec_",
        "sk_",
        "pi_",
        "seti_",
        "_secret_",
        "Bearer ",
        "BEARER\t",
        "bearer",
        "postgres",
        "POSTGRESQL://",
        "postgre\u017f://",
        "\u212a",
        "\u017f",
        "://",
        "_",
        " ",
        "a1",
        "x",
    ]
)
SHAPE_LIKE = st.lists(st.one_of(SHAPE_PIECES, st.text(max_size=6)), max_size=12).map("".join)


@given(SHAPE_LIKE)
@example("pk_live_abc")
@example("Authorization: bEaReR abc")
@example("postgre\u017fql://u@h/db")
@example("pi_123_secret_456")
def test_the_shape_pattern_is_skipped_only_where_it_cannot_match(text: str) -> None:
    """The prefilter before the secret-shape pattern never skips a match."""
    if _SECRET_SHAPES.search(text) is not None:
        assert may_hold_secret_shape(text)
    assert Redactor().text(text) == _every_rule(text)


# made-up values; one holds a secret-shape mark, so both rules meet in one string
REGISTERED = ("signing_secret_registered-0123", "queue-raptor-token-0123456789", "Zz9-secret")
TEXT_PIECES = st.one_of(
    SHAPE_PIECES,
    st.sampled_from([*REGISTERED, "Zz9-secre", "@", "%40", "jenny.rosen", "example.com", "%4"]),
    st.text(max_size=6),
)


@given(st.lists(TEXT_PIECES, max_size=12).map("".join))
@example("Zz9-secret")
@example("x queue-raptor-token-0123456789 y")
@example("mail jenny.rosen@example.com")
@example("?email=jenny%40example.com")
@example("Bearer abc")
@example("POSTGRE\u017f://h")
@example("whsk_abc123")
@example("whsec_abc")
@example("sk_test_abc")
@example("pk_live_def")
@example("pi_1_secret_2")
def test_text_applies_every_rule_with_secrets_registered(text: str) -> None:
    """Redactor.text's shortcuts (no search for a secret in a string shorter than all of
    them, the shape marks searched one by one) change no result: every registered
    secret, e-mail address and secret shape is still replaced."""
    redactor = Redactor()
    redactor.register(REGISTERED)
    assert redactor.text(text) == _every_rule(text, REGISTERED)
