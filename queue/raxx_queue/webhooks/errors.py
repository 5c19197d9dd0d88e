"""Errors of receiving and applying Stripe events."""

from __future__ import annotations

from raxx_queue.errors import ServiceError


class InvalidSignature(ServiceError):
    """Any verification failure; the public message is the same for every reason."""

    status = 400
    code = "INVALID_SIGNATURE"

    def __init__(self, reason: str) -> None:
        super().__init__("webhook signature verification failed")
        self.reason = reason


class InvalidEvent(ServiceError):
    """A verified event Queue cannot read or store (Stripe sends none such)."""

    status = 400
    code = "INVALID_EVENT"


class WebhookNotConfigured(ServiceError):
    status = 503
    code = "WEBHOOK_NOT_CONFIGURED"

    def __init__(self) -> None:
        super().__init__("no webhook secret is configured", headers={"Retry-After": "300"})


class ReplayStopped(ServiceError):
    status = 500
    code = "REPLAY_STOPPED"

    def __init__(self, event_id: str, reason: str) -> None:
        super().__init__(f"replay stopped at {event_id}: {reason}")
        self.event_id = event_id
