"""Removes secrets and PII from anything headed for logs or Sentry."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

REDACTED = "[redacted]"

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

# e-mail addresses, also URL-encoded (httpx logs request URLs with their queries);
# only strings holding an "@" are searched for them: the pattern scans identifiers
# (nearly every logged value) slowly.
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
# the shapes of keys, secrets and credentials, in one pass over each string
_SECRET_SHAPES = re.compile(
    "|".join(
        (
            r"\b(?:sk|rk|pk)_(?:test|live)_[A-Za-z0-9]+",
            r"\bwhsec_[A-Za-z0-9+/=]+",
            r"\b(?:pi|seti)_[A-Za-z0-9]+_secret_[A-Za-z0-9]+",
            r"(?i:bearer\s+\S+)",
            r"(?i:\bpostgres(?:ql)?://\S+)",
        )
    )
)


class Redactor:
    """Replaces configured secrets, known secret shapes and PII keys with a marker."""

    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()

    def register(self, secrets: Iterable[str | None]) -> None:
        known = set(self._secrets) | {s for s in secrets if s and len(s) >= 6}
        # longest first so a secret containing another is replaced whole
        self._secrets = tuple(sorted(known, key=len, reverse=True))

    def text(self, value: str) -> str:
        for secret in self._secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        if "@" in value or "%40" in value:
            value = _EMAIL.sub(REDACTED, value)
        return _SECRET_SHAPES.sub(REDACTED, value)

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
