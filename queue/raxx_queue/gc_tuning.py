"""Garbage-collector settings for a serving process.

A request allocates thousands of short-lived objects (parsed events, headers, log
dicts); with CPython's default threshold of 700 allocations the young generation is
collected several times per request. Nearly all of them die by reference counting,
so collecting far less often costs no memory (the 5-minute soak in bench/ watches
for growth). What start-up loaded (modules, the app, its routes) lives for the
whole process: frozen, later full collections never walk it again.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000


def tune_for_serving() -> None:
    """Call once the app is built, before serving requests."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
