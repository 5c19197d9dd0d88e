"""Aliases used by the billing flow tests (the double itself is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from raxx_queue.settings import Settings
from raxx_queue.simulator.double import StripeDouble
from tests.conftest import AppFactory, make_settings, running_app


@pytest.fixture
async def billing(
    settings: Settings, stripe_double: StripeDouble
) -> AsyncIterator[httpx.AsyncClient]:
    """The app whose Stripe gateway talks to `stripe_double`."""
    async with running_app(settings, stripe_transport=stripe_double.transport) as client:
        yield client


@pytest.fixture
def billing_factory(clean_db: str, stripe_double: StripeDouble) -> AppFactory:
    """`async with billing_factory(**settings_overrides)`: the app over the double."""

    def factory(**overrides: Any) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        settings = make_settings(clean_db, **overrides)
        return running_app(settings, stripe_transport=stripe_double.transport)

    return factory
