"""Raptor's side of the drift check, written from docs/mirror.md alone (not Queue's code):
the bucket of a customer and the digest of a bucket, computed over Raptor's copy."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any


def bucket(queue_customer_id: str, buckets: int) -> int:
    """First four bytes of SHA-256(id as UTF-8), big-endian unsigned, modulo N."""
    return (
        int.from_bytes(hashlib.sha256(queue_customer_id.encode("utf-8")).digest()[:4], "big")
        % buckets
    )


def digests(rows: Mapping[str, Mapping[str, Any]], buckets: int) -> list[tuple[int, str]]:
    """(row count, digest) of every bucket, in bucket order, over Raptor's rows by id."""
    lines: list[list[bytes]] = [[] for _ in range(buckets)]
    for queue_customer_id in sorted(rows, key=lambda key: key.encode("utf-8")):
        line = f"{queue_customer_id}:{rows[queue_customer_id]['version']}\n".encode()
        lines[bucket(queue_customer_id, buckets)].append(line)
    return [(len(found), hashlib.sha256(b"".join(found)).hexdigest()) for found in lines]


def differing(queue: list[dict[str, Any]], raptor: list[tuple[int, str]]) -> list[int]:
    """Buckets whose count or digest differ between Queue's answer and Raptor's copy."""
    return [
        entry["bucket"]
        for entry, (rows, digest) in zip(queue, raptor, strict=True)
        if (entry["rows"], entry["digest"]) != (rows, digest)
    ]
