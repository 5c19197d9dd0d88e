"""A serving process's start-up objects, kept out of the cyclic garbage collector's way.

CPython's full collection walks every tracked object: in a worker, the modules,
classes, functions, schemas and routes loaded at start-up (about 90,000 objects), for
40-90 ms with the event loop stopped, several times a minute under load. Every
request waiting meanwhile waits that long: the open-loop p99 of docs/performance.md.
Once start-up is over, those objects live as long as the process: frozen, they are
never walked again, and a full collection walks only what requests created since.
"""

from __future__ import annotations

import gc


def freeze_startup_objects() -> None:
    """Collect what start-up left behind, then freeze every object still alive (the
    permanent generation)."""
    gc.collect()
    gc.freeze()
