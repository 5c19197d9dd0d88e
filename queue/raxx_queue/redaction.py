"""Removes secrets and PII from anything headed for logs or Sentry, in linear time.

Every pattern is matched in time linear in the length of the text (see `_EMAIL`), and
no string longer than `MAX_SCANNED_CHARS` is scanned at all: it is replaced whole.
Anything a client sends can reach a log line or a Sentry event, so redaction must
never let a crafted value hold the event loop.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"
# Longer strings are not scanned, logged or sent: a request body (≤ 1 MiB) has no
# business in a log line, and the work stays bounded whatever a client sends.
MAX_SCANNED_CHARS = 64 * 1024
# What is kept of a redacted string: enough for a traceback, not for a payload.
MAX_KEPT_CHARS = 8 * 1024

SENSITIVE_KEYS = frozenset(
    {
        "email",
        "billing_email",
        "customer_email",
        "name",
        "billing_name",
        "customer_name",
        "address",
        "billing_address",
        "customer_address",
        "phone",
        "authorization",
        "token",
        "secret",
        "password",
        "api_key",
        "key",
        "database_url",
        "dsn",
        "client_secret",
        "stripe-signature",
        "cookie",
    }
)

_LOCAL = "A-Za-z0-9._%+-"
# E-mail addresses, also URL-encoded (httpx logs request URLs with their queries).
# The look-behind lets a match start only where a run of address characters starts:
# every later position of the run fails at once, so each run is scanned once, and
# the whole text in linear time. Without it, `aaaa…a@` costs a scan of the rest of
# the run from every position in it (quadratic: 1 MiB took about an hour).
_EMAIL = re.compile(rf"(?<![{_LOCAL}])[{_LOCAL}]+(?:@|%40)[A-Za-z0-9.-]+\.[A-Za-z]{{2,}}")
# the shapes of keys, secrets and credentials, in one pass over each string; each
# alternative starts at a word boundary or a fixed prefix and ends in a plain run
_SECRET_SHAPES = re.compile(
    "|".join(
        (
            r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9]+",
            r"\bwh(?:sec|sk)_[A-Za-z0-9+/=]+",
            r"\b(?:pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+",
            r"(?i:bearer\s+\S+)",
            r"(?i:\bpostgres(?:ql)?://\S+)",
        )
    )
)


def may_hold_secret_shape(text: str) -> bool:
    """False only for text that _SECRET_SHAPES cannot match."""
    # What every match of _SECRET_SHAPES contains, the parts it matches
    # case-insensitively casefolded (re's IGNORECASE also takes U+017F, the long s, for
    # 's'; casefold() maps it to 's'): a string holding none of them cannot match, and
    # most strings of a log line (ids, routes, outcomes) hold none, so the pattern is
    # not run on them. Each mark spelled out: a generator per call cost more than the
    # searches.
    if (
        "_test_" in text
        or "_live_" in text
        or "whsec_" in text
        or "whsk_" in text
        or "_secret_" in text
    ):
        return True
    folded = text.casefold()
    return "bearer" in folded or "postgres" in folded


def redact_emails(text: str) -> str:
    """Replace every e-mail address (plain or URL-encoded); linear in len(text)."""
    if "@" in text or "%40" in text:
        return _EMAIL.sub(REDACTED, text)
    return text


class Redactor:
    """Replaces configured secrets, known secret shapes and PII keys with a marker."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()
        self._shortest = MAX_SCANNED_CHARS  # no secret: no string is searched for one

    def register(self, secrets: Iterable[str | None]) -> None:
        known = set(self._secrets) | {s for s in secrets if s and len(s) >= 6}
        # longest first so a secret containing another is replaced whole
        self._secrets = tuple(sorted(known, key=len, reverse=True))
        self._shortest = len(self._secrets[-1]) if self._secrets else MAX_SCANNED_CHARS

    def text(self, value: str) -> str:
        if len(value) > MAX_SCANNED_CHARS:
            return f"{REDACTED} ({len(value)} characters, not scanned)"
        # most strings of a log line (ids, routes, outcomes) are shorter than any secret
        if len(value) >= self._shortest:
            for secret in self._secrets:
                if secret in value:
                    value = value.replace(secret, REDACTED)
        value = redact_emails(value)
        if may_hold_secret_shape(value):
            value = _SECRET_SHAPES.sub(REDACTED, value)
        if len(value) > MAX_KEPT_CHARS:
            return f"{value[:MAX_KEPT_CHARS]}… ({len(value) - MAX_KEPT_CHARS} characters cut)"
        return value

    def value(self, value: Any, depth: int = 0) -> Any:
        if depth > 8:
            return REDACTED
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                k: REDACTED if str(k).lower() in SENSITIVE_KEYS else self.value(v, depth + 1)
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v, depth + 1) for v in value]
        return value


redactor = Redactor()
