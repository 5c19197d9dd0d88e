"""Sentry, initialised only when SENTRY_DSN is set, with PII and secrets scrubbed.

Events carry no request body, headers, cookies or query string, and no frame's local
variables: those hold what a client sent (a webhook's whole body) and secrets.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
from sentry_sdk.transport import Transport

from raxx_queue import __version__
from raxx_queue.log_limits import SECURITY_EVENTS
from raxx_queue.redaction import redactor
from raxx_queue.settings import Settings

_REQUEST_FIELDS_DROPPED = ("data", "cookies", "headers", "query_string", "env")
_OFF: Any = {"mode": "off"}
# What the integrations may collect by themselves: nothing a caller sent and no
# variables (before_send removes them again, whatever an integration does).
DATA_COLLECTION: Any = {
    "user_info": False,
    "cookies": _OFF,
    "http_headers": {"request": _OFF},
    "http_bodies": [],
    "url_query_params": _OFF,
    "graphql": {"document": False, "variables": False},
    "gen_ai": {"inputs": False, "outputs": False},
    "database_query_data": False,
    "queues": False,
    "stack_frame_variables": False,
}


def _drop_frame_variables(event: dict[str, Any]) -> None:
    for part in ("exception", "threads"):
        container = event.get(part)
        values = container.get("values") if isinstance(container, dict) else None
        for value in values if isinstance(values, list) else ():
            stacktrace = value.get("stacktrace") if isinstance(value, dict) else None
            frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
            for frame in frames if isinstance(frames, list) else ():
                if isinstance(frame, dict):
                    frame.pop("vars", None)


def scrub_event(event: Any, _hint: Any) -> Any:
    """before_send: drop what a client sent and every local variable, redact the rest."""
    if not isinstance(event, dict):
        return event
    request = event.get("request")
    if isinstance(request, dict):
        for field in _REQUEST_FIELDS_DROPPED:
            request.pop(field, None)
        if isinstance(url := request.get("url"), str):
            request["url"] = url.split("?", 1)[0]
    event.pop("user", None)
    _drop_frame_variables(event)
    return redactor.value(event)


def scrub_breadcrumb(breadcrumb: Any, _hint: Any) -> Any:
    return redactor.value(breadcrumb)


def init_sentry(settings: Settings, transport: type[Transport] | None = None) -> bool:
    """Start Sentry when SENTRY_DSN is set; `transport` replaces the network (tests)."""
    if settings.sentry_dsn is None:
        return False
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.queue_env.value,
        release=f"raxx-queue@{__version__}",
        data_collection=DATA_COLLECTION,
        max_request_body_size="never",
        include_local_variables=False,
        before_send=scrub_event,
        before_send_transaction=scrub_event,
        before_breadcrumb=scrub_breadcrumb,
        traces_sample_rate=0.0,
        transport=transport,
    )
    return True


def capture_security_event(message: str, **tags: str) -> None:
    """Report a security-relevant event (e.g. a bad webhook signature) to Sentry, within
    its cap per kind (SECURITY_EVENTS): anyone can cause these, and the metrics count
    them all."""
    if not SECURITY_EVENTS.allow(":".join((message, *tags.values()))):
        return
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("security", "true")
        for key, value in tags.items():
            scope.set_tag(key, value)
        scope.set_tag("suppressed_before", str(SECURITY_EVENTS.take_suppressed()))
        sentry_sdk.capture_message(message, level="warning", scope=scope)


def capture_operational_event(message: str, **tags: str) -> None:
    """Report something operators must act on (e.g. events Stripe no longer keeps)."""
    with sentry_sdk.new_scope() as scope:
        for key, value in tags.items():
            scope.set_tag(key, value)
        sentry_sdk.capture_message(message, level="error", scope=scope)
