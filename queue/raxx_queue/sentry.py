"""Sentry, initialised only when SENTRY_DSN is set, with PII and secrets scrubbed."""

from __future__ import annotations

from typing import Any

import sentry_sdk

from raxx_queue import __version__
from raxx_queue.redaction import redactor
from raxx_queue.settings import Settings


def scrub_event(event: Any, _hint: Any) -> Any:
    """before_send: drop request bodies and cookies, redact everything else."""
    request = event.get("request")
    if isinstance(request, dict):
        request.pop("data", None)
        request.pop("cookies", None)
        request.pop("headers", None)
    event.pop("user", None)
    return redactor.value(event)


def init_sentry(settings: Settings) -> bool:
    if settings.sentry_dsn is None:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.queue_env.value,
        release=f"raxx-queue@{__version__}",
        send_default_pii=False,
        max_request_body_size="never",
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        traces_sample_rate=0.0,
    )
    return True


def capture_security_event(message: str, **tags: str) -> None:
    """Report a security-relevant event (e.g. a bad webhook signature) to Sentry."""
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("security", "true")
        for key, value in tags.items():
            scope.set_tag(key, value)
        sentry_sdk.capture_message(message, level="warning", scope=scope)
