"""Decode Stripe's bracketed form encoding (`items[0][price]=x`, `expand[]=y`) into nested data."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

_BRACKETED = re.compile(r"\[([^\]]*)\]")


def decode_form(encoded: str) -> dict[str, Any]:
    """Nested dict of a form body or query string; digit-keyed maps become lists."""
    return decode_pairs(parse_qsl(encoded, keep_blank_values=True))


def decode_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nested dict of already-split `(key, value)` pairs."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        _assign(root, split_key(key), value)
    decoded: dict[str, Any] = {name: _listify(child) for name, child in root.items()}
    return decoded


def split_key(key: str) -> list[str]:
    """`a[b][0][]` → `["a", "b", "0", ""]` (an empty segment means "append")."""
    head, bracket, rest = key.partition("[")
    if not bracket:
        return [key]
    return [head, *_BRACKETED.findall(bracket + rest)]


def _assign(node: dict[str, Any], segments: list[str], value: str) -> None:
    for segment in segments[:-1]:
        child = node.setdefault(_slot(node, segment), {})
        if not isinstance(child, dict):
            raise ValueError(f"form key conflict at {segment!r}")
        node = child
    node[_slot(node, segments[-1])] = value


def _slot(node: dict[str, Any], segment: str) -> str:
    return segment if segment else str(len(node))


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    children = {key: _listify(child) for key, child in value.items()}
    if children and sorted(children, key=_as_index) == [str(i) for i in range(len(children))]:
        return [children[str(i)] for i in range(len(children))]
    return children


def _as_index(key: str) -> int:
    return int(key) if key.isdigit() else -1
