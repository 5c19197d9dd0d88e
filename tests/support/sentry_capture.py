"""Sentry with a transport that keeps events in memory: what operators would be sent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sentry_sdk
from pydantic import SecretStr
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from raxx_queue.sentry import init_sentry
from raxx_queue.settings import Settings


@contextmanager
def sentry_events(settings: Settings) -> Iterator[list[dict[str, Any]]]:
    """`with sentry_events(settings) as events:` the events sent, as the block goes on."""
    events: list[dict[str, Any]] = []

    class _Collected(Transport):
        def capture_envelope(self, envelope: Envelope) -> None:
            if (event := envelope.get_event()) is not None:
                events.append(event)

    init_sentry(
        settings.model_copy(update={"sentry_dsn": SecretStr("https://public@sentry.invalid/1")}),
        transport=_Collected,
    )
    try:
        yield events
    finally:
        sentry_sdk.get_client().close()
        sentry_sdk.init()  # no DSN: a client that sends nothing, for the rest of the session
