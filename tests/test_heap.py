"""A serving process freezes its start-up objects once started (raxx_queue/heap.py):
the garbage collector's full passes then walk only what requests create."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from raxx_queue import cli, serving_worker
from raxx_queue.app import create_app_from_env
from raxx_queue.settings import Settings
from tests.conftest import running_app
from tests.support.process import free_port, service_env

# a worker loads tens of thousands of objects (modules, classes, routes, schemas)
STARTUP_OBJECTS = 20_000


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    """Each test starts with nothing frozen and leaves nothing frozen for the others."""
    gc.unfreeze()
    yield
    gc.unfreeze()


async def _frozen_once_started(app: FastAPI) -> tuple[int, int]:
    """(objects frozen, objects left to the collector) once the app's lifespan started."""
    async with app.router.lifespan_context(app):
        return gc.get_freeze_count(), len(gc.get_objects())


async def test_a_serving_app_freezes_what_start_up_left_alive(settings: Settings) -> None:
    async with running_app(settings, freeze_heap=True) as client:
        frozen = gc.get_freeze_count()
        assert frozen > STARTUP_OBJECTS
        # what the collector still walks is what came after: a fraction of it
        assert len(gc.get_objects()) < frozen / 4
        assert (await client.get("/health")).status_code == 200


async def test_an_app_built_in_process_freezes_nothing(settings: Settings) -> None:
    async with running_app(settings) as client:
        assert (await client.get("/health")).status_code == 200
        assert gc.get_freeze_count() == 0


async def test_the_workers_factory_freezes(clean_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`raxx-queue serve` with several workers: each builds its app with this factory."""
    for name, value in service_env(clean_db, free_port()).items():
        monkeypatch.setenv(name, value)
    frozen, left = await _frozen_once_started(create_app_from_env())
    assert frozen > STARTUP_OBJECTS
    assert left < frozen / 4


async def test_a_single_worker_server_freezes(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`raxx-queue serve` with one worker hands uvicorn an app that freezes once started."""
    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **_options: served.append(app))
    # the server's own signal handlers stay out of the test process
    monkeypatch.setattr(serving_worker, "exit_cleanly_after_shutdown", lambda: None)
    assert cli.run_server(settings, 1) == 0
    (app,) = served
    frozen, left = await _frozen_once_started(app)
    assert frozen > STARTUP_OBJECTS
    assert left < frozen / 4
