"""The Stripe API versions of incoming events: counted, and an unfamiliar one logged once.

An event's payload is rendered in the API version it was created under (the endpoint's
for a webhook; the same for replay and catch-up, which read the stored event). The one
parser (webhooks/changes.py) reads every shape it knows and tolerates the rest; this
module only makes a version visible (docs/runbooks/upgrade-stripe-api-version.md).
"""

from __future__ import annotations

import re
import threading

import structlog

from raxx_queue.metrics import STRIPE_EVENTS_BY_API_VERSION, labelled

log = structlog.get_logger(__name__)

# The releases whose event shapes the parser is proved against (tests/webhooks/golden/,
# tests/webhooks/test_api_versions.py): 2024-09-30.acacia … the pinned 2026-10-28.endive.
KNOWN_RELEASES = frozenset({"acacia", "basil", "clover", "dahlia", "endive"})
_VERSION = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.([a-z]+))?$")
_seen_unknown: set[str] = set()
_lock = threading.Lock()


def version_label(api_version: object) -> str:
    """The metric label of a version: itself when it looks like one (bounded cardinality)."""
    if isinstance(api_version, str) and _VERSION.match(api_version):
        return api_version
    return "none" if api_version is None else "malformed"


def is_known(api_version: object) -> bool:
    match = _VERSION.match(api_version) if isinstance(api_version, str) else None
    return bool(match and match.group(2) in KNOWN_RELEASES)


def observe_api_version(api_version: object, source: str) -> None:
    """Count the event; log a version outside the known releases the first time it arrives."""
    label = version_label(api_version)
    labelled(STRIPE_EVENTS_BY_API_VERSION, label, source).inc()
    if is_known(api_version):
        return
    with _lock:
        if label in _seen_unknown:
            return
        _seen_unknown.add(label)
    log.warning(
        "stripe_api_version_unknown",
        api_version=label,
        source=source,
        note="applied by the shape-tolerant parser; see the upgrade runbook",
    )
