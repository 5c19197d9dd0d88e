"""Stripe's official example objects (`fixtures3.json`, MIT licence beside it), loaded once."""

from __future__ import annotations

import copy
import functools
import json
import os
from pathlib import Path
from typing import Any

Json = dict[str, Any]

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "fixtures3.json"


def fixtures_path() -> Path:
    """Where the fixtures live: `QUEUE_STRIPE_FIXTURES`, else the copy beside this module."""
    override = os.environ.get("QUEUE_STRIPE_FIXTURES")
    return Path(override) if override else FIXTURES


@functools.cache
def _resources() -> Json:
    with fixtures_path().open(encoding="utf-8") as handle:
        resources: Json = json.load(handle)["resources"]
    return resources


def fixture(name: str) -> Json:
    """A deep copy of the fixture object `name` (e.g. "customer", "checkout.session")."""
    return copy.deepcopy(_resources()[name])
