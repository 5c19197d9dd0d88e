"""JSON encoding with orjson, and the response class that uses it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
from starlette.responses import JSONResponse


def _default(value: Any) -> Any:
    # the Stripe SDK's to_dict() keeps *_decimal fields as Decimal
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS, default=_default)


def dumps_str(value: Any) -> str:
    return dumps(value).decode()


class FastJSONResponse(JSONResponse):
    """A JSONResponse rendered by orjson (datetimes as ISO 8601)."""

    def render(self, content: Any) -> bytes:
        return dumps(content)
