"""Retry delays and dispatcher settings."""

from __future__ import annotations

import random

import pytest

from raxx_queue.mirror.backoff import retry_delay
from raxx_queue.mirror.dispatcher import DispatcherConfig
from raxx_queue.settings import ConfigError, load_settings
from tests.support import values


def test_retry_delay_doubles_up_to_the_cap_with_jitter() -> None:
    rng = random.Random(1)
    for attempts in range(1, 80):
        step = min(60.0, 1.0 * 2 ** (attempts - 1))
        delays = [retry_delay(attempts, base=1.0, cap=60.0, rng=rng) for _ in range(50)]
        assert all(step / 2 <= delay <= step for delay in delays)
        assert len(set(delays)) > 1  # jittered


def test_first_retry_uses_the_base() -> None:
    assert 0.5 <= retry_delay(0, base=1.0, cap=60.0) <= 1.0
    assert 0.5 <= retry_delay(1, base=1.0, cap=60.0) <= 1.0


def test_a_lease_must_outlast_a_push() -> None:
    with pytest.raises(ValueError, match="lease"):
        DispatcherConfig(request_timeout=10.0, lease_seconds=15.0)
    with pytest.raises(ValueError, match="positive"):
        DispatcherConfig(batch_size=0)
    assert DispatcherConfig().shutdown_grace == 6.0


def test_a_mirror_url_needs_a_token() -> None:
    with pytest.raises(ConfigError, match="RAPTOR_MIRROR_TOKEN"):
        load_settings(raptor_mirror_url="https://raptor.test/mirror", raptor_mirror_token=None)
    settings = load_settings(
        raptor_mirror_url="https://raptor.test/mirror", raptor_mirror_token=values.MIRROR_TOKEN
    )
    assert str(settings.raptor_mirror_url) == "https://raptor.test/mirror"
