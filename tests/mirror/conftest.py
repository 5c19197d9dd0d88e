"""Mirror tests: a Raptor receiver and the app pushing to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from raxx_queue.mirror.dispatcher import DispatcherConfig
from tests.conftest import AppClient, make_settings, running_app
from tests.mirror.steps import FAST
from tests.peers.raptor_receiver import RaptorReceiver, SignatureCheck
from tests.support import values

MirrorApp = Callable[..., AbstractAsyncContextManager[AppClient]]


@pytest.fixture
def receiver() -> Iterator[RaptorReceiver]:
    """Raptor checking every push's signature with the reference library."""
    check = SignatureCheck({"current": values.MIRROR_SIGNING_SECRET})
    with RaptorReceiver(token=values.MIRROR_TOKEN, signatures=check) as running:
        yield running


@pytest.fixture
def mirror_app(clean_db: str, receiver: RaptorReceiver) -> MirrorApp:
    """`async with mirror_app(config=..., **settings)`: the app pushing to the receiver."""

    def factory(
        config: DispatcherConfig = FAST, **overrides: Any
    ) -> AbstractAsyncContextManager[AppClient]:
        settings = make_settings(clean_db, raptor_mirror_url=receiver.url, **overrides)
        return running_app(settings, mirror_config=config)

    return factory
