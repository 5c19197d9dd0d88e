"""Opaque pagination cursors: base64url of a small JSON list of sort keys."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from raxx_queue.errors import ValidationFailed
from raxx_queue.jsonio import dumps


def encode_cursor(*keys: Any) -> str:
    return base64.urlsafe_b64encode(dumps(list(keys))).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        keys = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        raise ValidationFailed("cursor: not a cursor this service issued") from None
    if not isinstance(keys, list) or len(keys) != arity:
        raise ValidationFailed("cursor: not a cursor this service issued")
    return keys
