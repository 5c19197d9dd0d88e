"""Stripe's official example objects (`fixtures3.json`, MIT licence beside it), loaded once."""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

Json = dict[str, Any]

_REPO = Path(__file__).resolve().parents[2]
_CANDIDATES = (
    _REPO / "tests" / "fixtures" / "stripe" / "fixtures3.json",
    _REPO.parent / "shared" / "stripe" / "fixtures3.json",
)


def fixtures_path() -> Path:
    """Where the fixtures live: `QUEUE_STRIPE_FIXTURES`, a vendored copy, or `../shared/stripe/`."""
    override = os.environ.get("QUEUE_STRIPE_FIXTURES")
    if override:
        return Path(override)
    for candidate in _CANDIDATES:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"fixtures3.json not found; looked in {[str(c) for c in _CANDIDATES]}")


@functools.cache
def _resources() -> Json:
    with fixtures_path().open(encoding="utf-8") as handle:
        resources: Json = json.load(handle)["resources"]
    return resources


def fixture(name: str) -> Json:
    """A deep copy of the fixture object `name` (e.g. "customer", "checkout.session")."""
    return copy.deepcopy(_resources()[name])
