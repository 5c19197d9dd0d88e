"""Lists an app's routes, including those of included routers; takes a lane out."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any


def iter_route_objects(routes: Iterable[Any]) -> Iterator[Any]:
    """Every route object, those of included routers too."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from iter_route_objects(included.routes)
        else:
            yield route


def iter_routes(routes: Iterable[Any]) -> Iterator[tuple[str, str]]:
    """(method, path) of every route, HEAD left out."""
    for route in iter_route_objects(routes):
        for method in sorted(getattr(route, "methods", None) or set()):
            if method != "HEAD":
                yield method, route.path


def api_routes(app: Any) -> list[tuple[str, str]]:
    return [(m, p) for m, p in iter_routes(app.routes) if p.startswith("/api/")]


def without_lane(app: Any, lane: type) -> None:
    """The same app with the declared route answering: one lane's layer taken out."""
    app.user_middleware = [m for m in app.user_middleware if m.cls is not lane]
    app.middleware_stack = None  # rebuilt on the next request
